#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ from the cases the test
suites use: client commands, server-API bodies, tokens and config files.
Seeds are named seed-*; files found by fuzzing are kept beside them."""
import base64, hashlib, hmac, json, os, pathlib, subprocess

ROOT = pathlib.Path(__file__).resolve().parent
SECRET = b"herald-fuzz-secret"
SEP = b"\xff"


def write(target, name, data):
    folder = ROOT / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"seed-{name}").write_bytes(data if isinstance(data, bytes) else data.encode())


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs256(claims, alg="HS256"):
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def frames(*commands):
    return SEP.join("\n".join(json.dumps(c) for c in frame).encode() for frame in commands)


# Client frames: the first byte 1 connects first, 0 does not.
client = {
    "connect-subscribe": [[{"id": 2, "subscribe": {"channel": "news"}}], [{"id": 3, "publish": {"channel": "news", "data": {"t": 1}}}]],
    "history": [[{"id": 2, "subscribe": {"channel": "news", "recover": True, "offset": 1, "epoch": "x"}}, {"id": 3, "history": {"channel": "news", "limit": 10, "since": {"offset": 0, "epoch": ""}, "reverse": True}}]],
    "presence": [[{"id": 2, "subscribe": {"channel": "dashboard:t1"}}, {"id": 3, "presence": {"channel": "dashboard:t1"}}, {"id": 4, "presence_stats": {"channel": "dashboard:t1"}}, {"id": 5, "unsubscribe": {"channel": "dashboard:t1"}}]],
    "cache": [[{"id": 2, "subscribe": {"channel": "orders:1"}}]],
    "dm": [[{"id": 2, "subscribe": {"channel": "dm:#fuzzer,42"}}]],
    "rpc-inbox": [[{"id": 2, "rpc": {"method": "inbox.list", "data": {"limit": 5}}}, {"id": 3, "rpc": {"method": "inbox.unread_count", "data": {}}}, {"id": 4, "rpc": {"method": "inbox.mark_read", "data": {"all": True}}}]],
    "rpc-chat": [[{"id": 2, "rpc": {"method": "chat.list", "data": {}}}, {"id": 3, "rpc": {"method": "chat.send", "data": {"conversation": "c1", "text": "hi", "client_msg_id": "m1"}}}, {"id": 4, "rpc": {"method": "chat.typing", "data": {"conversation": "c1"}}}]],
    "ping-send-refresh": [[{"id": 2, "ping": {}}, {}, {"id": 3, "send": {"data": "x"}}, {"id": 4, "refresh": {"token": "x"}}, {"id": 5, "sub_refresh": {"channel": "news", "token": "x"}}]],
    "unknown": [[{"id": 9, "nope": {}}]],
}
for name, commands in client.items():
    write("client_frames", name, b"\x01" + frames(*commands))
write("client_frames", "connect-token", b"\x00" + frames([{"id": 1, "connect": {"token": hs256({"sub": "42", "channels": ["news"]}), "name": "js", "version": "5"}}]))
write("client_frames", "connect-anonymous", b"\x00" + frames([{"id": 1, "connect": {}}], [{"id": 2, "subscribe": {"channel": "news"}}]))
write("client_frames", "bad-json", b"\x01{not json")
write("client_frames", "batch-blank-lines", b"\x01\n\n{}\n" + json.dumps({"id": 2, "subscribe": {"channel": "a"}}).encode() + b"\n\n")

# Server-API bodies: the first byte picks the method in the target's list
# (herald_server::api::KNOWN_METHODS, then herald_apps::api::METHODS).
core = ["publish", "broadcast", "subscribe", "unsubscribe", "disconnect", "refresh", "presence", "presence_stats", "history", "history_remove", "channels", "info", "batch", "send", "user_status"]
apps = ["notify", "notifications_list", "notifications_update", "notifications_unread_count", "chat_create", "chat_add_members", "chat_remove_members", "chat_post", "chat_history", "chat_get"]
bodies = {
    "publish": {"channel": "news", "data": {"text": "hello"}, "idempotency_key": "k1", "tags": {"a": "b"}},
    "broadcast": {"channels": ["news", "orders:1"], "data": 1},
    "subscribe": {"user": "42", "channel": "news"},
    "unsubscribe": {"user": "42", "channel": "news"},
    "disconnect": {"user": "42", "disconnect": {"code": 4000, "reason": "bye"}},
    "refresh": {"user": "42", "expire_at": 1900000000},
    "presence": {"channel": "dashboard:t1"},
    "presence_stats": {"channel": "dashboard:t1"},
    "history": {"channel": "news", "limit": -1, "since": {"offset": 3, "epoch": "e"}, "reverse": True},
    "history_remove": {"channel": "news"},
    "channels": {"pattern": "news*"},
    "info": {},
    "batch": {"commands": [{"publish": {"channel": "news", "data": 1}}, {"info": {}}]},
    "send": {"user": "42", "data": {"x": 1}},
    "user_status": {"users": ["42", "43"]},
    "notify": {"users": ["42"], "title": "Hi", "level": "warning", "category": "orders", "dedupe_key": "d"},
    "notifications_list": {"user": "42", "limit": 5, "unread": True},
    "notifications_update": {"user": "42", "action": "read", "all": True},
    "notifications_unread_count": {"user": "42"},
    "chat_create": {"id": "c1", "members": ["42", "43"], "title": "Order 1"},
    "chat_add_members": {"conversation": "c1", "members": ["44"]},
    "chat_remove_members": {"conversation": "c1", "members": ["44"]},
    "chat_post": {"conversation": "c1", "text": "system", "kind": "system"},
    "chat_history": {"conversation": "c1", "limit": 20, "before": 10},
    "chat_get": {"conversation": "c1"},
}
methods = core + apps
for index, method in enumerate(methods):
    write("server_api", method, bytes([index]) + json.dumps(bodies[method]).encode())
write("server_api", "empty-publish", bytes([0]) + b"")
write("server_api", "not-json", bytes([0]) + b"{\"channel\":")

# Tokens: even first byte = a token as is, odd = claims to sign.
now = 1_900_000_000
for name, claims in {
    "connect": {"sub": "42", "exp": now, "info": {"name": "Ann"}, "channels": ["news"], "subs": {"orders:1": {"data": {"x": 1}}}},
    "subscribe": {"sub": "42", "channel": "orders:1", "exp": now, "info": {}},
    "expired": {"sub": "1", "exp": 1},
    "types": {"sub": 5, "exp": "soon", "channels": "news"},
}.items():
    write("jwt", f"claims-{name}", b"\x01" + json.dumps(claims).encode())
    write("jwt", f"token-{name}", b"\x00" + hs256(claims).encode())
write("jwt", "token-alg-none", b"\x00" + f"{b64(json.dumps({'alg': 'none'}).encode())}.{b64(b'{}')}.".encode())
write("jwt", "token-rs256-header", b"\x00" + hs256({"sub": "1"}, alg="RS256").encode())
write("jwt", "token-garbage", b"\x00not.a.token")

# Configs: what genconfig writes, and the examples the docs and tests give.
herald = os.environ.get("HERALD_BIN")
if herald:
    out = ROOT / "corpus" / "config" / "seed-genconfig"
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([herald, "genconfig", "--force", "--output", str(out)], check=True, stdout=subprocess.DEVNULL)
configs = {
    "broker": '[broker]\nkind = "redis"\ncluster_urls = ["redis://127.0.0.1:7000"]\nprefix = "h"\n',
    "storage": '[storage]\nurl = "postgres://u:p@127.0.0.1/db"\n[inbox]\nenabled = true\n[chat]\nmax_text_bytes = 10\n',
    "namespaces": '[channel.without_namespace]\npresence = true\n[[channel.namespaces]]\nname = "orders"\nhistory_size = 100\nhistory_ttl = "10m"\nforce_recovery = true\nforce_recovery_mode = "cache"\n[[channel.namespaces]]\nname = "dm"\nallow_user_limited_channels = true\n',
    "webhooks": '[webhooks]\nurl = "http://127.0.0.1:9000/hook"\nsecret = "s"\nevents = ["connect", "chat.message"]\n',
    "bad": '[server]\nlisten = 5\n[client]\npong_timeout = "later"\n[nope]\n',
    "demo": '[server]\nlisten = "0.0.0.0:8000"\n[demo]\nenabled = true\n[admin]\npassword = "short"\n',
    "proxies": '[client.proxy.connect]\nendpoint = "http://127.0.0.1:9000/connect"\nhttp_headers = ["Cookie"]\n[channel.proxy.publish]\nendpoint = "http://127.0.0.1:9000/publish"\ntimeout = "200ms"\n[rpc.proxy]\nendpoint = "ftp://x"\n[rpc.without_namespace]\nproxy_enabled = true\n[[channel.namespaces]]\nname = "p"\npublish_proxy_enabled = true\nsubscribe_proxy_enabled = true\n',
    "consumers": '[[consumers]]\nname = "app-outbox"\nkind = "postgresql"\n[consumers.postgresql]\ndsn = "postgres://127.0.0.1/app"\noutbox_table_name = "chat_outbox"\nnum_partitions = 2\npartition_poll_interval = "300ms"\n[[consumers]]\nname = "stream"\nkind = "redis_stream"\n[consumers.redis_stream]\nredis_url = "redis://127.0.0.1:6379"\nstreams = ["s"]\n',
}
for name, text in configs.items():
    if text:
        write("config", name, text)

# Backend answers to proxy requests: the first byte picks the event
# (connect, refresh, subscribe, publish, sub_refresh, rpc).
answers = {
    "connect": (0, {"result": {"user": "42", "expire_at": 1900000000, "info": {"n": 1}, "data": {"w": 1}, "channels": ["news"], "subs": {"a": {}}}}),
    "connect-error": (0, {"error": {"code": 1401, "message": "login", "temporary": True}}),
    "connect-disconnect": (0, {"disconnect": {"code": 4403, "reason": "banned"}}),
    "refresh": (1, {"result": {"expired": False, "expire_at": 1, "info": None}}),
    "subscribe": (2, {"result": {"data": {}, "override": {"presence": {"value": True}, "join_leave": {"value": False}}, "expire_at": 5}}),
    "publish": (3, {"result": {"data": {"t": "x"}, "skip_history": True, "idempotency_key": "k", "tags": {"a": "b"}}}),
    "sub_refresh": (4, {"result": {"expired": True}}),
    "rpc": (5, {"result": {"data": [1, 2]}}),
    "empty": (0, {}),
}
for name, (selector, body) in answers.items():
    write("proxy_answers", name, bytes([selector]) + json.dumps(body).encode())

