from channels.layers import get_channel_layer
from django.http import HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST


@csrf_exempt
@require_POST
async def publish(request, group):
    """POST /publish/GROUP/ with the raw payload as the body -> 200 "ok"."""
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError:
        return HttpResponseBadRequest("payload must be UTF-8 (it is sent as a text frame)")
    await get_channel_layer().group_send(group, {"type": "relay", "text": text})
    return HttpResponse("ok", content_type="text/plain; charset=utf-8")
