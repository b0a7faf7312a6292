import re

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import herald
from .models import Order

ORDER_CHANNEL = re.compile(r"orders:(\d+)")


def _refused():
    return JsonResponse({"detail": "sign in first"}, status=403)


@require_GET
@never_cache
def connection_token(request):
    """A token to connect to Herald as the signed-in user (the SDK's getToken)."""
    if not request.user.is_authenticated:
        return _refused()
    return JsonResponse({"token": herald.connection_token(request.user)})


@require_GET
@never_cache
def subscription_token(request):
    """A token to subscribe to ``?channel=orders:<id>``, for that order's customer
    and booster only (the subscription's getToken)."""
    if not request.user.is_authenticated:
        return _refused()
    channel = request.GET.get("channel", "")
    match = ORDER_CHANNEL.fullmatch(channel)
    order = Order.objects.filter(pk=match[1]).first() if match else None
    if order is None or not order.can_view(request.user):
        return JsonResponse({"detail": "not your order"}, status=403)
    return JsonResponse({"token": herald.subscription_token(request.user, channel)})


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
