from django.contrib import admin

from .models import Order


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "customer", "booster", "status", "progress", "price")
    list_editable = ("status", "progress")
