"""msgroute routing engine: classifies messages and picks their destination, behind nginx.

Entry points: ``python -m router_app`` (the service) and ``python -m router_app.loadgen`` (synthetic traffic).
"""
