"""ASGI entry point: HTTP through Django, websockets through Channels."""

import os

from core.asgi_http import get_http_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cs_portal.settings")
# Django's ASGI handler, the middleware chain and the view run as one call on the
# request's thread (core/asgi_http.py)
django_asgi_app = get_http_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from core.origin import SameOriginValidator  # noqa: E402
from core.ws_auth import DeferredAuthMiddlewareStack  # noqa: E402
from cs_portal.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # the page's own origin (scheme, host and port) or a trusted one only
        # the session's user is resolved by each consumer on the thread pool (core/ws_auth.py)
        "websocket": SameOriginValidator(DeferredAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

if settings.RUN_JOBS_IN_PROCESS:
    # the embedded default: SLA sweeps and reminders publish through the
    # in-memory channel layer, which only this process's sockets can hear
    from cs_portal.periodic import EmbeddedJobs  # noqa: E402

    application = EmbeddedJobs(application)
