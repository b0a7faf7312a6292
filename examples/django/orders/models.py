from django.conf import settings
from django.db import models
from django.db.models import DEFERRED


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    customer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="orders"
    )
    booster = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="boosted_orders",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    progress = models.PositiveSmallIntegerField(default=0)  # percent, 0-100
    price = models.DecimalField(max_digits=10, decimal_places=2)

    # The status as last read from or written to the database (None for an
    # order not saved yet), so that the post_save receiver can tell a status
    # change from any other save.
    saved_status = None

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        loaded = dict(zip(field_names, values))
        if loaded.get("status", DEFERRED) is not DEFERRED:
            instance.saved_status = loaded["status"]
        return instance

    def __str__(self):
        return f"Order #{self.pk} ({self.status})"

    @property
    def channel(self):
        """The Herald channel that carries this order's live state."""
        return f"orders:{self.pk}"

    def can_view(self, user):
        return user.is_authenticated and user.pk in (self.customer_id, self.booster_id)

    def state(self):
        """What every save publishes: the whole order, ready for JSON."""
        return {
            "id": self.pk,
            "customer_id": self.customer_id,
            "customer": self.customer.get_username(),
            "booster": self.booster.get_username() if self.booster else None,
            "status": self.status,
            "status_display": self.get_status_display(),
            "progress": self.progress,
            "price": str(self.price),
        }
