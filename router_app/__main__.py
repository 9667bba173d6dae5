"""``python -m router_app``: serve the routing engine (configuration from ``ROUTER_*`` variables)."""

from router_app.server import main

raise SystemExit(main())
