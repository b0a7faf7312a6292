"""The example against a real Herald: ``python manage.py test``.

Each test of ``HeraldTestCase`` starts its own ``herald serve`` with the
example's herald.toml on a free port (orders/herald_testserver.py), points the
HERALD_* settings at it, and checks what the published centrifuge-python
client, holding tokens from the example's own views, receives. Every wait is
on an SDK event, with a timeout.
"""

import base64
import json
import logging
import secrets
import socket
import time
from decimal import Decimal

import jwt
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client, TransactionTestCase, override_settings
from django.urls import reverse

from . import herald
from .herald_testserver import HeraldServer, SdkThread
from .models import Order

# The connection was refused for its token (docs/protocol.md): terminal.
INVALID_TOKEN = 3500
PERMISSION_DENIED = 103


class HeraldTestCase(TransactionTestCase):
    """TransactionTestCase: saves really commit, so the signal's on_commit
    publishing runs as it does in production."""

    def setUp(self):
        self.herald = HeraldServer(
            api_key=secrets.token_urlsafe(24), hmac_secret=secrets.token_urlsafe(32)
        ).start()
        self.addCleanup(self.herald.stop)
        settings = override_settings(
            HERALD_API_URL=self.herald.api_url,
            HERALD_API_KEY=self.herald.api_key,
            HERALD_HMAC_SECRET=self.herald.hmac_secret,
            HERALD_PUBLIC_URL=self.herald.url,
        )
        settings.enable()
        self.addCleanup(settings.disable)
        self.addCleanup(lambda: herald.api_client().close())  # its pooled connections
        self.sdk = SdkThread()
        self.addCleanup(self.sdk.close)  # runs before herald.stop (cleanups are LIFO)

        self.alice = User.objects.create_user("alice")
        self.bob = User.objects.create_user("bob")
        self.bea = User.objects.create_user("bea")  # a booster

    # --- through the example's views, as the browser page does ---------------

    def browser(self, user=None):
        client = Client()
        if user is not None:
            client.force_login(user)
        return client

    def connection_token(self, user):
        response = self.browser(user).get(reverse("herald-token"))
        self.assertEqual(response.status_code, 200, response.content)
        return response.json()["token"]

    def subscription_token(self, user, channel):
        response = self.browser(user).get(reverse("herald-subscription-token"), {"channel": channel})
        self.assertEqual(response.status_code, 200, response.content)
        return response.json()["token"]

    def connected(self, user):
        """A centrifuge-python client connected with the token view's token."""
        client = self.sdk.client(self.herald.ws_url, self.connection_token(user))
        client.connect()
        client.events.wait("connected")
        return client

    def subscribed(self, user, order):
        client = self.connected(user)
        sub = client.subscribe(order.channel, self.subscription_token(user, order.channel))
        sub.wait("subscribed")
        return client, sub

    def new_order(self, **fields):
        fields = {"customer": self.alice, "price": Decimal("49.90"), **fields}
        return Order.objects.create(**fields)

    def expected_state(self, order, **changes):
        state = {
            "id": order.pk,
            "customer_id": self.alice.pk,
            "customer": "alice",
            "booster": None,
            "status": "pending",
            "status_display": "Pending",
            "progress": 0,
            "price": "49.90",
        }
        state.update(changes)
        return state


def progress_is(value):
    return lambda ctx: ctx.pub.data["progress"] == value


def inbox(user):
    return f"inbox:#{user.pk}"


class OrderPublishTests(HeraldTestCase):
    def test_saving_an_order_publishes_its_state_to_its_channel(self):
        order = self.new_order()
        _, sub = self.subscribed(self.alice, order)

        order.booster = self.bea
        order.status = Order.Status.IN_PROGRESS
        order.progress = 40
        order.save()

        pub = sub.wait("publication", progress_is(40))
        self.assertEqual(
            pub.pub.data,
            self.expected_state(
                order, booster="bea", status="in_progress", status_display="In progress", progress=40
            ),
        )

        order.progress = 75
        order.save()
        pub = sub.wait("publication", progress_is(75))
        self.assertEqual(pub.pub.data["status"], "in_progress")

    def test_a_page_that_subscribes_later_gets_the_current_state_first(self):
        # herald.toml keeps orders:<id> in cache mode: the subscribe answer
        # carries the latest publication, so the page never shows stale state.
        order = self.new_order()
        order.progress = 60
        order.save()

        _, sub = self.subscribed(self.alice, order)

        first = sub.wait("publication")
        self.assertEqual(first.pub.data, self.expected_state(order, progress=60))

    def test_a_rolled_back_save_publishes_nothing(self):
        order = self.new_order()
        _, sub = self.subscribed(self.alice, order)
        sub.wait("publication")  # the cached state from create()

        with self.assertRaises(RuntimeError), transaction.atomic():
            order.progress = 10
            order.save()
            raise RuntimeError("rolled back")
        order.progress = 20
        order.save()

        sub.wait("publication", progress_is(20))
        # Publications arrive in order: had the rolled-back save published,
        # progress 10 would have come before 20.
        self.assertEqual([p.pub.data["progress"] for p in sub.all("publication")], [0, 20])


class TokenViewTests(HeraldTestCase):
    def test_anonymous_users_get_no_token(self):
        anonymous = self.browser()
        for response in (
            anonymous.get(reverse("herald-token")),
            anonymous.get(reverse("herald-subscription-token"), {"channel": "orders:1"}),
        ):
            self.assertEqual(response.status_code, 403)
            self.assertNotIn("token", response.json())

    def test_the_token_connects_to_herald_as_that_user(self):
        token = self.connection_token(self.alice)
        claims = jwt.decode(token, self.herald.hmac_secret, algorithms=["HS256"])
        self.assertEqual(claims["sub"], str(self.alice.pk))
        self.assertGreater(claims["exp"], time.time())

        client = self.sdk.client(self.herald.ws_url, token)
        client.connect()
        client.events.wait("connected")
        # Herald took the user from the token: it subscribed the connection
        # to alice's inbox, and to nobody else's.
        client.events.wait("server_subscribed")
        self.assertEqual(
            [ctx.channel for ctx in client.events.all("server_subscribed")], [inbox(self.alice)]
        )

    def test_the_token_cannot_be_turned_into_another_users(self):
        header, payload, signature = self.connection_token(self.alice).split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["sub"] = str(self.bob.pk)
        forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        forged = f"{header}.{forged_payload}.{signature}"
        # ...nor signed with anything but the secret Herald shares with Django.
        wrong_secret = jwt.encode(claims, "not-the-secret-herald-shares-with-django", algorithm="HS256")

        for token in (forged, wrong_secret):
            client = self.sdk.client(self.herald.ws_url, token)
            client.connect()
            refused = client.events.wait("disconnected")
            self.assertEqual(refused.code, INVALID_TOKEN, refused)
            self.assertEqual(client.events.all("connected"), [])

    def test_only_the_customer_and_booster_may_subscribe_to_an_order(self):
        order = self.new_order(booster=self.bea)
        for user in (self.alice, self.bea):
            _, sub = self.subscribed(user, order)
            self.assertEqual(sub.wait("publication").pub.data["id"], order.pk)

        stranger = self.browser(self.bob)
        for channel in (order.channel, "orders:999999", "news", f"orders:{order.pk}x"):
            response = stranger.get(reverse("herald-subscription-token"), {"channel": channel})
            self.assertEqual(response.status_code, 403, channel)
        # Without a subscription token Herald refuses bob too (herald.toml:
        # allow_subscribe_for_client = false for orders).
        bob = self.connected(self.bob)
        denied = bob.subscribe(order.channel).wait("unsubscribed")
        self.assertEqual(denied.code, PERMISSION_DENIED, denied)


class InboxNotificationTests(HeraldTestCase):
    def test_a_status_change_notifies_the_customer(self):
        client = self.connected(self.alice)
        client.events.wait("server_subscribed")

        order = self.new_order()
        order.progress = 5  # not a status change: no notification
        order.save()
        order = Order.objects.get(pk=order.pk)  # as a view would load it
        order.status = Order.Status.IN_PROGRESS
        order.save()

        def notification(ctx):
            return ctx.channel == inbox(self.alice) and ctx.pub.data["type"] == "notification"

        push = client.events.wait("server_publication", notification)
        note = push.pub.data["notification"]
        self.assertEqual(note["user"], str(self.alice.pk))
        self.assertEqual(note["title"], f"Order #{order.pk}: In progress")
        self.assertEqual((note["level"], note["category"], note["read"]), ("info", "orders", False))
        self.assertEqual(
            note["data"],
            self.expected_state(order, status="in_progress", status_display="In progress", progress=5),
        )
        unread = client.events.wait(
            "server_publication", lambda ctx: ctx.pub.data["type"] == "unread_count"
        )
        self.assertEqual(unread.pub.data["count"], 1)

        order.status = Order.Status.COMPLETED
        order.progress = 100
        order.save()
        done = client.events.wait(
            "server_publication",
            lambda ctx: notification(ctx) and ctx.pub.data["notification"]["id"] != note["id"],
        )
        self.assertEqual(done.pub.data["notification"]["level"], "success")
        # Pushes arrive in order, so had the create or the progress-only save
        # notified, that notification would be among these, before the first.
        titles = [c.pub.data["notification"]["title"] for c in client.events.all("server_publication", notification)]
        self.assertEqual(titles, [f"Order #{order.pk}: In progress", f"Order #{order.pk}: Completed"])


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WithoutHeraldTests(TransactionTestCase):
    """Nothing listens at HERALD_API_URL here."""

    def setUp(self):
        settings = override_settings(HERALD_API_URL=f"http://127.0.0.1:{closed_port()}/api")
        settings.enable()
        self.addCleanup(settings.disable)
        self.alice = User.objects.create_user("alice")
        self.bob = User.objects.create_user("bob")

    def test_an_order_saves_while_herald_is_down(self):
        with self.assertLogs("orders.signals", logging.ERROR) as logs:
            order = Order.objects.create(customer=self.alice, price=Decimal("10.00"))
            order.status = Order.Status.CANCELLED
            order.save()
        self.assertEqual(Order.objects.get(pk=order.pk).status, "cancelled")
        self.assertEqual(len(logs.records), 3, logs.output)  # two publishes, one notify

    def test_the_order_page_is_for_the_customer_only(self):
        with self.assertLogs("orders.signals", logging.ERROR):  # no Herald to publish to
            order = Order.objects.create(customer=self.alice, price=Decimal("10.00"))
        url = reverse("order-detail", args=[order.pk])
        with override_settings(HERALD_PUBLIC_URL="https://rt.example.test"):
            page = self.client_for(self.alice).get(url)
        self.assertEqual(page.status_code, 200)
        self.assertContains(page, '<script src="https://rt.example.test/assets/vendor/centrifuge.js">')
        self.assertContains(page, '"wss://rt.example.test/connection/websocket"')
        self.assertEqual(self.client_for(self.bob).get(url).status_code, 404)
        self.assertEqual(self.client_for(None).get(url).status_code, 302)  # to the login page

    def client_for(self, user):
        client = Client()
        if user is not None:
            client.force_login(user)
        return client
