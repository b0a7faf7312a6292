"""Settings of the Herald example project: stock Django plus five HERALD_* settings.

Everything real-time is Herald's: there is no ASGI server, no Channels and no
Redis channel layer here.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# Development defaults; set DJANGO_SECRET_KEY and DJANGO_DEBUG=0 anywhere else.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-herald-example-dev-only")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "orders",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "shop.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "shop.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "db.sqlite3",
    }
}

AUTH_PASSWORD_VALIDATORS = []  # a demo: any password will do

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The demo signs in through the admin's login page.
LOGIN_URL = "admin:login"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"orders": {"handlers": ["console"], "level": "INFO"}},
}

# --- Herald ---------------------------------------------------------------
# The defaults match examples/django/herald.toml. With `herald serve` and no
# config file, Herald prints a new API key and HMAC secret on every start:
# export them as HERALD_API_KEY and HERALD_HMAC_SECRET before runserver.

# Where Django calls Herald's server API (publish, notify).
HERALD_API_URL = os.environ.get("HERALD_API_URL", "http://127.0.0.1:8000/api")
HERALD_API_KEY = os.environ.get("HERALD_API_KEY", "dev-only-api-key-change-me")
# Signs the connection and subscription tokens Herald verifies (auth.hmac_secret).
HERALD_HMAC_SECRET = os.environ.get("HERALD_HMAC_SECRET", "dev-only-hmac-secret-change-me-before-deploying")
# Where browsers reach Herald: the WebSocket and the centrifuge SDK it serves.
HERALD_PUBLIC_URL = os.environ.get("HERALD_PUBLIC_URL", "http://127.0.0.1:8000")
# Lifetime of the tokens; the browser SDK fetches fresh ones before they expire.
HERALD_TOKEN_TTL = int(os.environ.get("HERALD_TOKEN_TTL", "900"))
