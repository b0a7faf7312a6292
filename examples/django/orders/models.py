from django.conf import settings
from django.db import models, transaction
from django.db.models import DEFERRED, F
from django.db.models.functions import Now


class Outbox(models.Model):
    """Herald server API calls waiting for Herald (docs/outbox.md).

    Centrifugo's outbox table, column for column: Herald's PostgreSQL consumer
    (herald.toml: [[consumers]]) runs each committed row as the API call
    ``method`` with the JSON body ``payload``, then deletes it. A row written in
    the transaction of a change exists exactly when the change committed, so a
    committed change is always announced (even if Herald is down right then)
    and a rolled-back one never is.
    """

    id = models.BigAutoField(primary_key=True)
    method = models.TextField()
    payload = models.JSONField()
    # Rows of one partition run one at a time, in id order (herald.toml has
    # one partition, which keeps every order's messages in order).
    partition = models.IntegerField(db_default=0)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "herald_outbox"

    def __str__(self):
        return f"{self.method} #{self.pk}"

    @classmethod
    def publish(cls, channel, data, idempotency_key):
        """Publishes ``data`` to ``channel`` once the caller's transaction commits.

        Herald may run a row twice (if it dies between running and deleting
        it); a repeated ``idempotency_key`` on the channel publishes nothing.
        """
        return cls.objects.create(
            method="publish",
            payload={"channel": channel, "data": data, "idempotency_key": idempotency_key},
        )

    @classmethod
    def notify(cls, user_ids, title, **fields):
        """Adds a notification to each user's Herald inbox (Herald's ``notify``,
        docs/inbox.md) once the caller's transaction commits.

        ``fields``: message, level, category, data, dedupe_key.
        """
        return cls.objects.create(
            method="notify",
            payload={"users": [str(u) for u in user_ids], "title": title, **fields},
        )


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
    # Counts the saves: each save's publication is "order-<id>-v<version>".
    version = models.PositiveIntegerField(default=1, editable=False)

    # The status as last read from or written to the database (None for an
    # order not saved yet), so that save() can tell a status change from any
    # other save.
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
        """Who may open the order's page and subscribe to its channel."""
        return user.is_authenticated and (
            user.is_staff or user.pk in (self.customer_id, self.booster_id)
        )

    def state(self):
        """What every save publishes: the whole order, ready for JSON."""
        return {
            "id": self.pk,
            "version": self.version,
            "customer_id": self.customer_id,
            "customer": self.customer.get_username(),
            "booster": self.booster.get_username() if self.booster else None,
            "status": self.status,
            "status_display": self.get_status_display(),
            "progress": self.progress,
            "price": str(self.price),
        }

    def save(self, *args, **kwargs):
        """Saves the order and, in the same transaction, writes what Herald is
        to announce: the new state to ``orders:<id>``, and an inbox
        notification to the customer when the status changed.

        (``QuerySet.update()`` and ``bulk_create()`` bypass this, as they
        bypass every ``save()``.)
        """
        created = self._state.adding
        status_changed = not created and self.saved_status != self.status
        with transaction.atomic():
            if not created:
                # Counted by the database, not in Python: two saves of one
                # order from stale copies must get different versions, or
                # the second publication would repeat the first's
                # idempotency key and Herald would drop it.
                self.version = F("version") + 1
                if kwargs.get("update_fields") is not None:
                    kwargs["update_fields"] = {*kwargs["update_fields"], "version"}
            super().save(*args, **kwargs)
            if not created:
                self.refresh_from_db(fields=["version"])
            self._announce(status_changed)
        self.saved_status = self.status

    def _announce(self, status_changed):
        state = self.state()
        Outbox.publish(self.channel, state, idempotency_key=f"order-{self.pk}-v{self.version}")
        if status_changed:
            Outbox.notify(
                [self.customer_id],
                f"Order #{self.pk}: {self.get_status_display()}",
                message=f"Progress {self.progress}%.",
                level="success" if self.status == self.Status.COMPLETED else "info",
                category="orders",
                data=state,
                # Herald adds one notification per key and user: each status
                # is announced once per order, however often it is saved.
                dedupe_key=f"order-{self.pk}-{self.status}",
            )
