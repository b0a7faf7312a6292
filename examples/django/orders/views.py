"""The order page, and the two views Herald's proxies ask (docs/proxy.md).

The browser connects to Herald with no token. Herald forwards the WebSocket
request's Cookie header to ``herald_connect``, where Django's session and auth
middleware find the signed-in user as for any page; then it asks
``herald_subscribe`` whether that user may watch ``orders:<id>``.
"""

import hmac
import json
import logging
import re
from functools import wraps

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseBadRequest, HttpResponseForbidden, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .models import Order

log = logging.getLogger(__name__)

ORDER_CHANNEL = re.compile(r"orders:(\d+)")

# The error codes the proxy views answer with (Centrifugo's format: 400-1999,
# clear of the protocol's own). Neither is "temporary", so the SDK does not
# retry: a signed-out page stops reconnecting, a stranger stops subscribing.
LOGIN_REQUIRED = 1401
NOT_YOUR_ORDER = 403


def from_herald(view):
    """For a view that Herald's proxies POST to: exempt from CSRF (Herald is not
    a browser submitting a form) and answered only when the request carries
    the secret Herald adds to each one (herald.toml: http.static_headers).
    Anyone else could otherwise ask who a session cookie belongs to, or who
    may watch which order."""

    @csrf_exempt
    @require_POST
    @wraps(view)
    def checked(request):
        sent = request.headers.get("X-Herald-Secret", "")
        if not hmac.compare_digest(sent.encode(), settings.HERALD_PROXY_SECRET.encode()):
            # Herald treats any answer but 200 as a failure (the SDK retries),
            # so a secret that differs between herald.toml and Django shows up
            # here and in Herald's log.
            log.warning("%s: refused a request without Herald's secret", request.path)
            return HttpResponseForbidden("for Herald only")
        return view(request)

    return checked


@from_herald
def herald_connect(request):
    """Herald's connect proxy: the connection is the session's user.

    Herald forwards the Cookie header (http_headers = ["Cookie"]), so the
    session middleware has already found ``request.user``.
    """
    user = request.user
    if not user.is_authenticated:
        return JsonResponse({"error": {"code": LOGIN_REQUIRED, "message": "login required"}})
    return JsonResponse({"result": {"user": str(user.pk), "info": {"name": user.get_username()}}})


@from_herald
def herald_subscribe(request):
    """Herald's subscribe proxy for ``orders:<id>``: the order's customer, its
    booster and staff may watch it, nobody else.

    The user is the one this view's connect answer named, which Herald sends
    in the body (``user``); it holds for the connection's lifetime, whatever
    the browser's cookies do meanwhile.
    """
    try:
        body = json.loads(request.body)
    except ValueError:
        return HttpResponseBadRequest("a JSON body from Herald expected")
    match = ORDER_CHANNEL.fullmatch(body.get("channel", ""))
    user_id = str(body.get("user") or "")
    user = get_user_model().objects.filter(pk=user_id).first() if user_id.isdigit() else None
    order = Order.objects.filter(pk=match[1]).first() if match else None
    if user is None or order is None or not order.can_view(user):
        return JsonResponse({"error": {"code": NOT_YOUR_ORDER, "message": "not your order"}})
    return JsonResponse({"result": {}})


@login_required
def order_detail(request, pk):
    order = get_object_or_404(Order.objects.select_related("customer", "booster"), pk=pk)
    if not order.can_view(request.user):
        raise Http404("No such order")
    public = settings.HERALD_PUBLIC_URL.rstrip("/")
    return render(request, "orders/order_detail.html", {
        "order": order,
        "state": order.state(),
        "herald_js": f"{public}/assets/vendor/centrifuge.js",
        "herald_ws": public.replace("http", "ws", 1) + "/connection/websocket",
    })
