"""Settings of the Herald example project: stock Django on PostgreSQL, plus two
HERALD_* settings.

Everything real-time is Herald's: there is no ASGI server, no Channels and no
Redis channel layer here. Django and Herald meet in two places only: Herald
asks Django's proxy views who a connection is and who may watch an order, and
reads what Django has to say from the outbox table in Django's database.
"""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

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


def postgres_from_url(url):
    """``postgres://user:password@host:port/name`` as a DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql") or not parts.path.strip("/"):
        raise ImproperlyConfigured(f"DATABASE_URL must be postgres://user@host:port/name, not {url!r}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


# PostgreSQL, because Herald's outbox consumer reads the herald_outbox table
# from this database (herald.toml: [[consumers]] dsn, the same default). The
# test runner creates and drops test_<NAME> itself.
DATABASES = {
    "default": postgres_from_url(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/herald_django_example")
    )
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
# The defaults match examples/django/herald.toml.

# Where browsers reach Herald: the WebSocket and the centrifuge SDK it serves.
HERALD_PUBLIC_URL = os.environ.get("HERALD_PUBLIC_URL", "http://127.0.0.1:8000")
# Herald sends it in X-Herald-Secret with every proxy request (herald.toml:
# http.static_headers), so that the proxy views answer Herald and nobody else.
HERALD_PROXY_SECRET = os.environ.get("HERALD_PROXY_SECRET", "dev-only-proxy-secret-change-me")
