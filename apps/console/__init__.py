"""The console's own pages on top of every app: the home dashboard (what needs attention now).

Not a Django app of its own (no models): a top-layer package that reads through the other apps'
models and selectors. The admin site calls ``dashboard.dashboard_callback`` for its index.
"""
