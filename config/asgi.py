"""ASGI entry point: HTTP through Django, WebSocket through Channels (served by Daphne)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
# Daphne runs every request in a thread of its own: PostgreSQL connections come from a bounded
# pool here instead of one persistent connection per request thread (DB_POOL in settings).
os.environ.setdefault("DB_POOL", "true")
# Django must be set up before the routing imports consumers and models.
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402

if settings.SERVE_STATIC:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    django_asgi_app = ASGIStaticFilesHandler(django_asgi_app)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from apps.core.ws_origin import TokenAwareOriginValidator  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Token-authenticated sockets with no Origin pass; browser origins must be allowed.
        "websocket": TokenAwareOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)

# Daphne only imports this module: keep full garbage collections from stalling every socket.
from apps.core import gc_tuning  # noqa: E402

gc_tuning.install(
    freeze_seconds=settings.ASGI_GC_FREEZE_SECONDS, full_seconds=settings.ASGI_GC_FULL_SECONDS
)
