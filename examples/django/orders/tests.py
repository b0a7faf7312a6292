"""The example against a real Herald: ``python manage.py test`` (PostgreSQL).

Each test of ``HeraldTestCase`` serves Django on a live test server and starts
its own ``herald serve`` with the example's herald.toml (orders/herald_testserver.py):
Herald's connect and subscribe proxies call the live server with a fresh
secret, and its outbox consumer reads the test database. The published
centrifuge-python client connects with nothing but a Django session cookie,
as the browser page does. Every wait is on an SDK event, with a timeout.

``DjangoSideTests`` check the outbox rows and the proxy views' answers
without Herald.
"""

import json
import secrets
from decimal import Decimal
from unittest import mock
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.models import User
from django.db import DatabaseError, connection, transaction
from django.test import Client, LiveServerTestCase, TestCase, override_settings
from django.urls import reverse

from .herald_testserver import HeraldServer, SdkThread
from .models import Order, Outbox
from .views import LOGIN_REQUIRED, NOT_YOUR_ORDER


def outbox_dsn():
    """The database the tests run on (``test_<NAME>``, made by the test runner),
    as a URL for Herald's outbox consumer."""
    db = connection.settings_dict
    credentials = quote(db["USER"], safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def session_of(user):
    """A session cookie of ``user``, as the browser holds after signing in."""
    browser = Client()
    browser.force_login(user)
    name = settings.SESSION_COOKIE_NAME
    return f"{name}={browser.cookies[name].value}"


def progress_is(value):
    return lambda ctx: ctx.pub.data["progress"] == value


def inbox(user):
    return f"inbox:#{user.pk}"


class OrderFixtures:
    def make_users(self):
        self.alice = User.objects.create_user("alice")  # the customer
        self.bea = User.objects.create_user("bea")  # a booster
        self.bob = User.objects.create_user("bob")  # a stranger
        self.sam = User.objects.create_user("sam", is_staff=True)

    def new_order(self, **fields):
        fields = {"customer": self.alice, "price": Decimal("49.90"), **fields}
        return Order.objects.create(**fields)

    def expected_state(self, order, **changes):
        state = {
            "id": order.pk,
            "version": 1,
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


class HeraldTestCase(OrderFixtures, LiveServerTestCase):
    """LiveServerTestCase is a TransactionTestCase: saves really commit, which
    the outbox consumer needs (it only ever sees committed rows), and the live
    server answers Herald's proxy requests."""

    host = "127.0.0.1"  # where Herald's proxies call Django

    def setUp(self):
        secret = secrets.token_urlsafe(24)
        override = override_settings(HERALD_PROXY_SECRET=secret)
        override.enable()
        self.addCleanup(override.disable)
        self.herald = HeraldServer(self.live_server_url, secret, outbox_dsn())
        self.addCleanup(self.herald.close)
        self.herald.start()
        self.sdk = SdkThread()
        self.addCleanup(self.sdk.close)  # runs before herald.close (cleanups are LIFO)
        self.make_users()

    def connected(self, user):
        """A centrifuge-python client connected with ``user``'s session cookie."""
        client = self.sdk.client(self.herald.ws_url, {"Cookie": session_of(user)})
        client.connect()
        client.events.wait("connected")
        return client

    def subscribed(self, user, order):
        client = self.connected(user)
        sub = client.subscribe(order.channel)
        sub.wait("subscribed")
        return client, sub


class SessionProxyTests(HeraldTestCase):
    def test_a_session_cookie_connects_as_its_user_who_gets_the_order_updates(self):
        client = self.connected(self.alice)
        # Herald took the user from Django's answer: it subscribed the
        # connection to alice's inbox, and to nobody else's.
        client.events.wait("server_subscribed")
        self.assertEqual(
            [ctx.channel for ctx in client.events.all("server_subscribed")], [inbox(self.alice)]
        )

        order = self.new_order()
        sub = client.subscribe(order.channel)
        sub.wait("subscribed")
        order.booster = self.bea
        order.status = Order.Status.IN_PROGRESS
        order.progress = 40
        order.save()

        pub = sub.wait("publication", progress_is(40))
        self.assertEqual(
            pub.pub.data,
            self.expected_state(
                order, version=2, booster="bea", status="in_progress",
                status_display="In progress", progress=40,
            ),
        )

    def test_without_a_signed_in_session_herald_refuses_the_connection(self):
        for headers in (None, {"Cookie": f"{settings.SESSION_COOKIE_NAME}=not-a-session"}):
            client = self.sdk.client(self.herald.ws_url, headers)
            client.connect()
            refused = client.events.wait("disconnected")
            # The connect proxy's error, not temporary: the SDK gives up.
            self.assertEqual(refused.code, LOGIN_REQUIRED, refused)
            self.assertEqual(client.events.all("connected"), [])

    def test_only_the_customer_the_booster_and_staff_may_watch_an_order(self):
        order = self.new_order(booster=self.bea)
        for user in (self.alice, self.bea, self.sam):
            _, sub = self.subscribed(user, order)
            self.assertEqual(sub.wait("publication").pub.data["id"], order.pk, user)

        bob = self.connected(self.bob)
        for channel in (order.channel, "orders:999999"):
            denied = bob.subscribe(channel).wait("unsubscribed")
            self.assertEqual(denied.code, NOT_YOUR_ORDER, (channel, denied))


class OutboxDeliveryTests(HeraldTestCase):
    def test_a_page_that_subscribes_later_gets_the_current_state_first(self):
        order = self.new_order()
        _, open_page = self.subscribed(self.alice, order)
        order.progress = 60
        order.save()
        open_page.wait("publication", progress_is(60))  # Herald has it

        # herald.toml keeps orders:<id> in cache mode: the subscribe answer
        # carries the latest publication, so the page never shows stale state.
        _, late = self.subscribed(self.alice, order)
        first = late.wait("publication")
        self.assertEqual(first.pub.data, self.expected_state(order, version=2, progress=60))

    def test_a_change_saved_in_a_rolled_back_transaction_is_never_delivered(self):
        order = self.new_order()
        _, sub = self.subscribed(self.alice, order)
        sub.wait("publication")  # the state from create()
        rolled_back = {"payload__idempotency_key": f"order-{order.pk}-v2"}

        with self.assertRaises(RuntimeError), transaction.atomic():
            order.progress = 10
            order.save()
            self.assertTrue(Outbox.objects.filter(**rolled_back).exists())
            raise RuntimeError("rolled back")
        self.assertFalse(Outbox.objects.filter(**rolled_back).exists())
        order.progress = 20
        order.save()

        sub.wait("publication", progress_is(20))
        # Publications arrive in order: had the rolled-back save been
        # delivered, progress 10 would have come before 20.
        self.assertEqual([p.pub.data["progress"] for p in sub.all("publication")], [0, 20])

    def test_a_change_committed_while_herald_is_stopped_arrives_once_it_starts(self):
        order = self.new_order()
        _, sub = self.subscribed(self.alice, order)
        sub.wait("publication")  # Herald is consuming the outbox

        self.herald.stop()
        order.progress = 70
        order.save()
        self.assertTrue(
            Outbox.objects.filter(payload__idempotency_key=f"order-{order.pk}-v2").exists(),
            "the change waits in the outbox",
        )

        self.herald.start()
        # A page opened now (Herald listens on a new port) gets the change,
        # whether Herald ran the row before or after the subscribe.
        _, reopened = self.subscribed(self.alice, order)
        pub = reopened.wait("publication", progress_is(70))
        self.assertEqual(pub.pub.data, self.expected_state(order, version=2, progress=70))

    def test_a_row_run_twice_publishes_once(self):
        order = self.new_order()
        _, sub = self.subscribed(self.alice, order)
        with transaction.atomic():
            order.progress = 30
            order.save()
            # As if Herald had run the row, died before deleting it, and run
            # it again after a restart (docs/outbox.md, "Delivery").
            row = Outbox.objects.filter(method="publish").latest("id")
            Outbox.objects.create(method=row.method, payload=row.payload)
        order.progress = 40
        order.save()

        sub.wait("publication", progress_is(40))
        # The repeat carried the same idempotency_key, so Herald dropped it.
        self.assertEqual([p.pub.data["progress"] for p in sub.all("publication")], [0, 30, 40])

    def test_saves_from_stale_copies_are_all_delivered(self):
        order = self.new_order()
        _, sub = self.subscribed(self.alice, order)
        first, second = Order.objects.get(pk=order.pk), Order.objects.get(pk=order.pk)
        first.progress = 30
        first.save()
        second.progress = 50  # saved from a copy loaded before first's save
        second.save()

        sub.wait("publication", progress_is(50))
        # The database counts the versions, so the second save's key differs
        # from the first's and Herald publishes both.
        self.assertEqual(
            [(p.pub.data["version"], p.pub.data["progress"]) for p in sub.all("publication")],
            [(1, 0), (2, 30), (3, 50)],
        )


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
            self.expected_state(
                order, version=3, status="in_progress", status_display="In progress", progress=5
            ),
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
        titles = [
            c.pub.data["notification"]["title"]
            for c in client.events.all("server_publication", notification)
        ]
        self.assertEqual(titles, [f"Order #{order.pk}: In progress", f"Order #{order.pk}: Completed"])


@override_settings(HERALD_PROXY_SECRET="test-proxy-secret")
class DjangoSideTests(OrderFixtures, TestCase):
    """No Herald: what Django writes to the outbox and answers the proxies."""

    def setUp(self):
        self.make_users()

    def ask(self, view, body, secret="test-proxy-secret", cookie=None):
        """POSTs as Herald does: JSON, the secret header, no CSRF token (the
        client enforces CSRF checks, as a browser's would be)."""
        herald = Client(enforce_csrf_checks=True)
        headers = {"X-Herald-Secret": secret} if secret is not None else {}
        if cookie is not None:
            herald.cookies.load(cookie)
        return herald.post(
            reverse(view), json.dumps(body), content_type="application/json", headers=headers
        )

    def test_an_order_saves_with_herald_down_and_its_messages_wait_in_the_outbox(self):
        order = self.new_order()
        order.status = Order.Status.CANCELLED
        order.save()

        self.assertEqual(Order.objects.get(pk=order.pk).status, "cancelled")
        cancelled = self.expected_state(
            order, version=2, status="cancelled", status_display="Cancelled"
        )
        self.assertEqual(
            [(row.method, row.payload, row.partition) for row in Outbox.objects.order_by("id")],
            [
                ("publish", {
                    "channel": order.channel,
                    "data": self.expected_state(order),
                    "idempotency_key": f"order-{order.pk}-v1",
                }, 0),
                ("publish", {
                    "channel": order.channel,
                    "data": cancelled,
                    "idempotency_key": f"order-{order.pk}-v2",
                }, 0),
                ("notify", {
                    "users": [str(self.alice.pk)],
                    "title": f"Order #{order.pk}: Cancelled",
                    "message": "Progress 0%.",
                    "level": "info",
                    "category": "orders",
                    "data": cancelled,
                    "dedupe_key": f"order-{order.pk}-cancelled",
                }, 0),
            ],
        )

    def test_a_change_is_saved_only_with_its_outbox_row(self):
        order = self.new_order()
        order.progress = 50
        with mock.patch.object(Outbox, "publish", side_effect=DatabaseError("no outbox")):
            with self.assertRaises(DatabaseError):
                order.save()
        # One transaction: without its announcement, the change is not saved.
        self.assertEqual(Order.objects.get(pk=order.pk).progress, 0)

    def test_update_fields_still_counts_the_version(self):
        order = self.new_order()
        order.progress = 10
        order.save(update_fields=["progress"])
        self.assertEqual(Order.objects.get(pk=order.pk).version, 2)
        self.assertEqual(Outbox.objects.latest("id").payload["idempotency_key"], f"order-{order.pk}-v2")

    def test_the_proxy_views_answer_only_with_heralds_secret(self):
        for secret in (None, "", "not-the-secret"):
            for view in ("herald-connect", "herald-subscribe"):
                with self.assertLogs("orders.views", "WARNING"):
                    response = self.ask(view, {"channel": "orders:1"}, secret=secret)
                self.assertEqual(response.status_code, 403, (view, secret))
        self.assertEqual(self.client.get(reverse("herald-connect")).status_code, 405)

    def test_the_connect_proxy_names_the_session_user(self):
        answer = self.ask("herald-connect", {"client": "c1", "transport": "websocket"},
                          cookie=session_of(self.alice))
        self.assertEqual(answer.status_code, 200)
        self.assertEqual(answer.json(), {"result": {"user": str(self.alice.pk), "info": {"name": "alice"}}})

        anonymous = self.ask("herald-connect", {"client": "c2", "transport": "websocket"})
        self.assertEqual(
            anonymous.json(), {"error": {"code": LOGIN_REQUIRED, "message": "login required"}}
        )

    def test_the_subscribe_proxy_allows_the_customer_the_booster_and_staff(self):
        order = self.new_order(booster=self.bea)

        def answer(user, channel=order.channel):
            body = {"client": "c1", "user": str(user.pk) if user else "", "channel": channel}
            return self.ask("herald-subscribe", body).json()

        for user in (self.alice, self.bea, self.sam):
            self.assertEqual(answer(user), {"result": {}}, user)
        refused = {"error": {"code": NOT_YOUR_ORDER, "message": "not your order"}}
        self.assertEqual(answer(self.bob), refused)
        self.assertEqual(answer(None), refused)  # an anonymous connection
        for channel in ("orders:999999", f"orders:{order.pk}x", "orders:"):
            self.assertEqual(answer(self.alice, channel), refused, channel)

    def test_the_order_page_connects_without_a_token(self):
        order = self.new_order()
        url = reverse("order-detail", args=[order.pk])
        with override_settings(HERALD_PUBLIC_URL="https://rt.example.test"):
            page = self.client_for(self.alice).get(url)
        self.assertEqual(page.status_code, 200)
        self.assertContains(page, '<script src="https://rt.example.test/assets/vendor/centrifuge.js">')
        self.assertContains(page, '"wss://rt.example.test/connection/websocket"')
        self.assertNotContains(page, "getToken")
        self.assertEqual(self.client_for(self.sam).get(url).status_code, 200)  # staff
        self.assertEqual(self.client_for(self.bob).get(url).status_code, 404)
        self.assertEqual(self.client_for(None).get(url).status_code, 302)  # to the login page

    def client_for(self, user):
        client = Client()
        if user is not None:
            client.force_login(user)
        return client
