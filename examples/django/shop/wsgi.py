"""WSGI entry point. The project needs no ASGI server: WebSockets are Herald's job."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
application = get_wsgi_application()
