"""Everything Django says to Herald: publish, notify and the tokens browsers show it."""

import time
from functools import lru_cache

import jwt
import requests
from cent import Client, PublishRequest
from django.conf import settings


@lru_cache(maxsize=4)
def _client(api_url, api_key):
    # One pooled HTTP session per Herald; keyed on the settings so that a
    # changed URL or key (override_settings in tests) gets its own client.
    return Client(api_url, api_key, timeout=3.0)


def api_client():
    """cent's client for the configured Herald."""
    return _client(settings.HERALD_API_URL, settings.HERALD_API_KEY)


def publish(channel, data):
    """Publishes ``data`` to every subscriber of ``channel`` (cent, server API ``publish``)."""
    api_client().publish(PublishRequest(channel=channel, data=data))


class HeraldError(Exception):
    """Herald answered a server API call with {"error": {"code", "message"}}."""


def notify(user_ids, title, **fields):
    """Adds a notification to each user's Herald inbox (server API ``notify``).

    cent has a typed method for each Centrifugo API call and no public way to
    send any other one, and ``notify`` is Herald's own (docs/inbox.md), so this
    is a plain HTTP POST with the same API key header cent sends.
    ``fields``: message, level, category, data, dedupe_key.
    Returns the ids of the new notifications, one per user.
    """
    response = requests.post(
        f"{settings.HERALD_API_URL}/notify",
        json={"users": [str(u) for u in user_ids], "title": title, **fields},
        headers={"X-API-Key": settings.HERALD_API_KEY},
        timeout=3.0,
    )
    response.raise_for_status()
    body = response.json()
    if "error" in body:
        raise HeraldError(body["error"])
    return body["result"]["ids"]


def _sign(claims):
    now = int(time.time())
    claims = {**claims, "iat": now, "exp": now + settings.HERALD_TOKEN_TTL}
    return jwt.encode(claims, settings.HERALD_HMAC_SECRET, algorithm="HS256")


def connection_token(user):
    """Lets the browser connect to Herald as ``user``; Herald's user id is the pk."""
    return _sign({"sub": str(user.pk)})


def subscription_token(user, channel):
    """Lets ``user``'s connection subscribe to ``channel`` (and nothing else)."""
    return _sign({"sub": str(user.pk), "channel": channel})
