"""ASGI entry point: plain Django for HTTP, a Channels consumer for /ws/GROUP/."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peer.settings")

# Initialise Django (apps, settings) before importing anything that uses it.
from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from peer.routing import websocket_urlpatterns  # noqa: E402

# Deliberately no AuthMiddlewareStack (needs sessions + a database) and no
# AllowedHostsOriginValidator (it rejects handshakes without an Origin header,
# which non-browser load generators do not send).
application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter(websocket_urlpatterns),
    }
)
