"""msgroute routing engine: classifies messages, queues them by class and delivers them to the least-loaded
destination, behind nginx.

Entry points: ``python -m router_app`` (the service), ``python -m router_app.sink`` (a destination for local
runs) and ``python -m router_app.loadgen`` (synthetic traffic).
"""
