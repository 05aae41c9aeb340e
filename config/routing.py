"""All WebSocket routes of the project, collected from each app's ``routing.py``."""

import importlib

from django.conf import settings

websocket_urlpatterns: list = []
for _app in settings.PROJECT_APPS:
    try:
        _module = importlib.import_module(f"{_app}.routing")
    except ModuleNotFoundError as exc:
        if exc.name != f"{_app}.routing":
            raise
        continue
    websocket_urlpatterns += getattr(_module, "websocket_urlpatterns", [])
