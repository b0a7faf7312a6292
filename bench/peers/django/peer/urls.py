from django.urls import re_path

from peer.routing import GROUP_RE
from peer.views import publish

urlpatterns = [
    re_path(rf"^publish/{GROUP_RE}/$", publish),
]
