from django.urls import path

from . import views

urlpatterns = [
    # Asked by Herald (herald.toml: [client.proxy.connect], [channel.proxy.subscribe]).
    path("herald/connect", views.herald_connect, name="herald-connect"),
    path("herald/subscribe", views.herald_subscribe, name="herald-subscribe"),
    path("orders/<int:pk>/", views.order_detail, name="order-detail"),
]
