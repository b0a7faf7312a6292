"""Order saves go out through Herald: the live state to ``orders:<id>``, and an
inbox notification to the customer when the status changed."""

import logging

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from . import herald
from .models import Order

log = logging.getLogger(__name__)


@receiver(post_save, sender=Order)
def order_saved(sender, instance, created, **kwargs):
    channel, state = instance.channel, instance.state()
    status_changed = not created and instance.saved_status != instance.status
    instance.saved_status = instance.status
    # After COMMIT: a rolled-back save publishes nothing, and a page that
    # re-reads the order on the publication finds what was published.
    transaction.on_commit(lambda: _send(channel, state, status_changed))


def _send(channel, state, status_changed):
    # Real-time is best effort: the order is saved whatever Herald says, and a
    # page that missed a change gets the latest state when it subscribes again.
    try:
        herald.publish(channel, state)
    except Exception:
        log.exception("Herald: publishing %s failed", channel)
    if status_changed:
        try:
            herald.notify(
                [state["customer_id"]],
                f"Order #{state['id']}: {state['status_display']}",
                message=f"Progress {state['progress']}%.",
                level="success" if state["status"] == Order.Status.COMPLETED else "info",
                category="orders",
                data=state,
                # Herald adds one notification per key and user, so each status
                # is announced once per order however often the signal fires
                # (a retried request, a double save).
                dedupe_key=f"order-{state['id']}-{state['status']}",
            )
        except Exception:
            log.exception("Herald: notifying the customer of order %s failed", state["id"])
