from django.urls import re_path

from peer.consumers import RelayConsumer

# Channels group names: ASCII letters, digits, '-', '_', '.'; under 100 chars.
GROUP_RE = r"(?P<group>[A-Za-z0-9_.\-]{1,99})"

websocket_urlpatterns = [
    re_path(rf"^ws/{GROUP_RE}/$", RelayConsumer.as_asgi()),
]
