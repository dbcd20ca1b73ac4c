"""The web process: pages, WebSockets, static files and the signal intake, in one ASGI app.

Served by uvicorn (uvloop, httptools, websockets) by default, or by Daphne with
WEB_SERVER=daphne: see `web_command` in tradosphere/devrun.py and
docs/performance.md, "Why uvicorn". Channels' router has no lifespan handler,
so uvicorn runs with `--lifespan off`.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradosphere.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from brokers.hooks import intake  # noqa: E402
from tradosphere.routing import websocket_urlpatterns  # noqa: E402

# Static files are few and small, so the web process serves them itself; a
# proxy or CDN in front can take this over in a larger deployment.
django_http = ASGIStaticFilesHandler(django_asgi_app)


async def http(scope, receive, send):  # type: ignore[no-untyped-def]
    """Signal webhooks skip Django's request cycle (brokers/hooks.py); the rest is Django."""
    if scope["path"].startswith("/hooks/"):
        return await intake(scope, receive, send)
    return await django_http(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
