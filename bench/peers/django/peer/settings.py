"""Minimal Django settings for the Channels benchmark peer.

Only what a WebSocket fan-out service needs: no database, no sessions,
no auth, no templates, no static files. The channel layer is the stock
channels_redis RedisChannelLayer with its default tuning.
"""

import os

DEBUG = False

# Benchmark-only key; the peer never signs anything a client keeps.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "herald-bench-django-peer-not-secret")

ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    # daphne first, as the Channels docs require (it overrides runserver).
    "daphne",
    "channels",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",  # the publish view is csrf_exempt
]

ROOT_URLCONF = "peer.urls"
ASGI_APPLICATION = "peer.asgi.application"

# No database at all: Django falls back to its dummy backend, which is
# fine because nothing here touches the ORM.
DATABASES = {}

USE_TZ = True
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"

# Publish bodies are small; keep Django's default 2.5 MB in-memory limit.

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# redis-py 8 caps each connection pool at 100 connections and raises
# MaxConnectionsError ("Too many connections") beyond that instead of waiting.
# channels_redis holds one pooled connection per in-flight group_add /
# group_discard / group_send, so a burst of >100 simultaneous WebSocket
# connects or disconnects (or publishes) makes requests fail with 500s.
# Raising the cap is the standard production fix; redis-server's own
# maxclients default is 10000.
REDIS_MAX_CONNECTIONS = int(os.environ.get("REDIS_MAX_CONNECTIONS", "1000"))

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # "address" takes a redis-py URL (redis://[:password@]host:port/db);
            # the other keys are passed to redis.asyncio.ConnectionPool.
            "hosts": [{"address": REDIS_URL, "max_connections": REDIS_MAX_CONNECTIONS}],
            # Library defaults, stated explicitly so the benchmark report can
            # cite them: capacity=100 messages buffered per channel (excess
            # is dropped for group_send, logged at INFO), expiry=60 s for an
            # unread message, group_expiry=86400 s for group membership.
            "capacity": 100,
            "expiry": 60,
            "group_expiry": 86400,
        },
    },
}

# Errors and warnings to stderr; no mail_admins, no per-request logging.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
