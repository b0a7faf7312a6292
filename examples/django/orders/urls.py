from django.urls import path

from . import views

urlpatterns = [
    path("herald/token/", views.connection_token, name="herald-token"),
    path("herald/subscription-token/", views.subscription_token, name="herald-subscription-token"),
    path("orders/<int:pk>/", views.order_detail, name="order-detail"),
]
