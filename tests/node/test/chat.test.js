// Chat (docs/chat.md) with the published centrifuge SDK and the server HTTP API:
// conversations and members, chat:<id> subscriptions, send/history/typing/read,
// unread counts (chat.list, chat.read, chat_unread pushes on inbox:#<user>),
// backend posts, membership changes and errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  useHerald, startHerald, connToken, subscribed, refusedSubscription,
  waitFor, expectNoEvent, rejection, safeJson,
} from './harness.js';
import { appsHelpers } from './apps_helpers.js';

const { srv, pool } = useHerald({
  // anonymous connections exist (and may not chat)
  client: { allow_anonymous_connect_without_token: true },
});

let seq = 0;
/** A name unique in this run (users, conversations). */
const unique = (p) => `${p}-${process.pid}-${++seq}`;

const { api, apiError, rpc, rpcError, tab } = appsHelpers(srv, pool);

/** A new conversation with `members`; returns its id. */
async function conversation(members, extra = {}) {
  const id = unique('conv');
  await api('chat_create', { conversation: id, title: `Conversation ${id}`, members, ...extra });
  return id;
}

/** Wait for a push of `type` on a chat subscription, matching `pred(data)`; resolves with the data. */
function chatPush(sub, type, pred = () => true, timeoutMs = 5000) {
  return waitFor(sub, 'publication', timeoutMs, (p) => p.data?.type === type && pred(p.data)).then((p) => p.data);
}

/** Wait for a chat_unread push on the user's inbox channel for `conv` with `unread`. */
function unreadPush(client, user, conv, unread, timeoutMs = 5000) {
  return waitFor(client, 'publication', timeoutMs, (p) => p.channel === `inbox:#${user}`
    && p.data?.type === 'chat_unread' && p.data.conversation === conv && p.data.unread === unread).then((p) => p.data);
}

const send = (client, conv, text, extra = {}) => rpc(client, 'chat.send', { conversation: conv, text, ...extra });

/** Resolves once the millisecond clock has moved on (server timestamps use the same clock). */
async function nextMillisecond() {
  const now = Date.now();
  while (Date.now() === now) await new Promise((resolve) => setImmediate(resolve));
}

test('chat_create answers the conversation; creating it again updates title and data and only adds members', async () => {
  const [a, b, c] = [unique('a'), unique('b'), unique('c')];
  const id = unique('order');
  const before = Date.now();
  const { conversation: conv } = await api('chat_create', {
    conversation: id, title: 'Order #1', members: [a, b], data: { order: 1 },
  });
  assert.equal(conv.id, id);
  assert.equal(conv.title, 'Order #1');
  assert.deepEqual(conv.data, { order: 1 });
  assert.deepEqual([...conv.members].sort(), [a, b].sort());
  assert.ok(Number.isInteger(conv.created_at) && conv.created_at >= before - 60000, safeJson(conv));

  const { conversation: again } = await api('chat_create', {
    conversation: id, title: 'Order #1 (paid)', members: [c], data: { order: 1, paid: true },
  });
  assert.equal(again.id, id);
  assert.equal(again.title, 'Order #1 (paid)');
  assert.deepEqual(again.data, { order: 1, paid: true });
  assert.deepEqual([...again.members].sort(), [a, b, c].sort(), 'members are added, never removed');
  assert.equal(again.created_at, conv.created_at);

  // a member sees the updated title in chat.list
  const t = await tab(b);
  const { conversations } = await rpc(t, 'chat.list', {});
  const mine = conversations.find((x) => x.id === id);
  assert.ok(mine, safeJson(conversations));
  assert.equal(mine.title, 'Order #1 (paid)');

  // the conversation id: 1–128 of letters, digits, - _ .
  assert.ok(await api('chat_create', { conversation: 'A.b_c-9', members: [a] }));
  assert.ok(await api('chat_create', { conversation: 'x'.repeat(128), members: [a] }));
  for (const bad of ['', 'x'.repeat(129), 'has space', 'slash/no', 'colon:no', 'hash#no']) {
    const e = await apiError('chat_create', { conversation: bad, members: [a] });
    assert.equal(e.code, 107, `conversation ${safeJson(bad)}: ${safeJson(e)}`);
  }
  const e = await apiError('chat_create', { conversation: unique('big'), members: Array.from({ length: 1001 }, (_, i) => `m${i}`) });
  assert.equal(e.code, 107, `1001 members: ${safeJson(e)}`);
});

test('chat_get answers the conversation with its last_message_id; unknown is 102', async () => {
  const [a, b] = [unique('a'), unique('b')];
  const id = await conversation([a, b], { data: { order: 7 } });
  const empty = (await api('chat_get', { conversation: id })).conversation;
  assert.equal(empty.id, id);
  assert.equal(empty.title, `Conversation ${id}`);
  assert.deepEqual(empty.data, { order: 7 });
  assert.deepEqual([...empty.members].sort(), [a, b].sort());
  assert.ok(Number.isInteger(empty.created_at));
  assert.ok(empty.last_message_id === null || empty.last_message_id === 0,
    `no message yet: ${safeJson(empty.last_message_id)}`);
  const t = await tab(a);
  await send(t, id, 'one');
  const { message } = await send(t, id, 'two');
  const got = (await api('chat_get', { conversation: id })).conversation;
  assert.equal(got.last_message_id, message.id);
  assert.equal(got.created_at, empty.created_at);
  const missing = unique('nope');
  const e = await apiError('chat_get', { conversation: missing });
  assert.equal(e.code, 102, safeJson(e));
  assert.equal(e.message, `unknown conversation: ${missing}`);
});

test('a member added later starts with everything before marked read', async () => {
  const [a, late] = [unique('a'), unique('late')];
  const id = await conversation([a]);
  const ta = await tab(a);
  for (const text of ['m1', 'm2', 'm3']) await send(ta, id, text);
  await api('chat_add_members', { conversation: id, members: [late] });
  const tl = await tab(late);
  const listed = (await rpc(tl, 'chat.list', {})).conversations.find((c) => c.id === id);
  assert.ok(listed, 'the new member lists the conversation');
  assert.equal(listed.unread, 0);
  assert.deepEqual((await rpc(tl, 'chat.history', { conversation: id })).messages.map((m) => m.text),
    ['m1', 'm2', 'm3'], 'and may read the earlier messages');
  const counted = unreadPush(tl, late, id, 1);
  const { message } = await send(ta, id, 'm4');
  await counted;
  assert.deepEqual(await rpc(tl, 'chat.read', { conversation: id, message_id: message.id }), { unread: 0 });
});

test('members exchange messages live; both tabs of a user receive them; ids count up from 1 per conversation', async () => {
  const [a, b] = [unique('a'), unique('b')];
  const id = await conversation([a, b]);
  const other = await conversation([a, b]);
  const [a1, a2, b1] = await Promise.all([tab(a), tab(a), tab(b)]);
  const [subA1, subA2, subB1] = await Promise.all([
    subscribed(a1, `chat:${id}`), subscribed(a2, `chat:${id}`), subscribed(b1, `chat:${id}`),
  ]);

  const atB = chatPush(subB1, 'message');
  const atA2 = chatPush(subA2, 'message');
  const atA1 = chatPush(subA1, 'message');
  const before = Date.now();
  const { message } = await send(a1, id, 'Hello', { data: { n: 1 }, client_msg_id: 'c-1' });
  const { created_at: createdAt, ...rest } = message;
  assert.deepEqual(rest, {
    id: 1, conversation: id, user: a, kind: 'message', text: 'Hello', data: { n: 1 }, client_msg_id: 'c-1',
  });
  assert.ok(Number.isInteger(createdAt) && createdAt >= before - 60000, `created_at ${createdAt}`);
  for (const p of await Promise.all([atB, atA2, atA1])) assert.deepEqual(p, { type: 'message', message });

  const back = chatPush(subA2, 'message', (d) => d.message.user === b);
  const { message: reply } = await send(b1, id, 'Hi!');
  assert.equal(reply.id, 2);
  assert.equal(reply.data ?? null, null, 'no data is null');
  assert.deepEqual((await back).message, reply);

  // a message in another conversation starts at 1 and is not pushed here
  const noCross = expectNoEvent(subB1, 'publication', 700);
  const { message: first } = await send(b1, other, 'elsewhere');
  assert.equal(first.id, 1);
  assert.equal(first.conversation, other);
  await noCross;

  const { messages, has_more: hasMore } = await rpc(a2, 'chat.history', { conversation: id });
  assert.deepEqual(messages, [message, reply]);
  assert.equal(hasMore, false);
});

test('chat.send is idempotent on client_msg_id: one stored message, one push, the stored answer', async () => {
  const [a, b] = [unique('a'), unique('b')];
  const id = await conversation([a, b]);
  const [ta, tb] = await Promise.all([tab(a), tab(b)]);
  const sub = await subscribed(tb, `chat:${id}`);

  const pushed = chatPush(sub, 'message');
  const { message } = await send(ta, id, 'pay now', { client_msg_id: 'retry-me' });
  await pushed;

  const noSecond = expectNoEvent(sub, 'publication', 800, (p) => p.data?.type === 'message');
  const again = await send(ta, id, 'pay now', { client_msg_id: 'retry-me' });
  assert.deepEqual(again.message, message);
  // after a reconnect, say: a new connection of the same user, even with changed text
  const ta2 = await tab(a);
  const third = await send(ta2, id, 'pay now (edited)', { client_msg_id: 'retry-me' });
  assert.deepEqual(third.message, message, 'the stored message is answered');
  await noSecond;

  const { messages } = await rpc(tb, 'chat.history', { conversation: id });
  assert.deepEqual(messages.map((m) => m.id), [message.id]);

  // a new client_msg_id is a new message
  const { message: next } = await send(ta, id, 'pay now', { client_msg_id: 'retry-me-2' });
  assert.equal(next.id, message.id + 1);
});

test('non-members: subscribe to chat:<id> fails with 103, and send, history, read and typing answer 103', async () => {
  const [a, x] = [unique('a'), unique('x')];
  const id = await conversation([a]);
  const tx = await tab(x);
  const [sub, ctx] = await refusedSubscription(tx, `chat:${id}`);
  assert.equal(ctx.code, 103, safeJson(ctx));
  assert.equal(sub.state, 'unsubscribed');

  const stored = await send(await tab(a), id, 'members only');
  for (const [method, data] of [
    ['chat.send', { conversation: id, text: 'let me in' }],
    ['chat.history', { conversation: id }],
    ['chat.read', { conversation: id, message_id: stored.message.id }],
    ['chat.typing', { conversation: id }],
  ]) {
    const err = await rpcError(tx, method, data);
    assert.equal(err.code, 103, `${method}: ${safeJson(err)}`);
  }
  assert.equal(tx.state, 'connected');
  // the refused send stored nothing
  const { messages } = await api('chat_history', { conversation: id });
  assert.deepEqual(messages.map((m) => m.text), ['members only']);
  // and the stranger's chat.list does not show it
  const { conversations } = await rpc(tx, 'chat.list', {});
  assert.equal(conversations.find((c) => c.id === id), undefined);
});

test('an unknown conversation is 102 "unknown conversation: <id>" from the SDK and the API', async () => {
  const t = await tab(unique('u'));
  const id = unique('nope');
  for (const [method, data] of [
    ['chat.send', { conversation: id, text: 'hello?' }],
    ['chat.history', { conversation: id }],
    ['chat.read', { conversation: id, message_id: 1 }],
    ['chat.typing', { conversation: id }],
  ]) {
    const err = await rpcError(t, method, data);
    assert.equal(err.code, 102, `${method}: ${safeJson(err)}`);
    assert.equal(err.message, `unknown conversation: ${id}`, `${method}: ${safeJson(err)}`);
  }
  for (const [method, body] of [
    ['chat_history', { conversation: id }],
    ['chat_post', { conversation: id, text: 'system says' }],
    ['chat_add_members', { conversation: id, members: ['u'] }],
    ['chat_remove_members', { conversation: id, members: ['u'] }],
  ]) {
    const e = await apiError(method, body);
    assert.equal(e.code, 102, `${method}: ${safeJson(e)}`);
    assert.equal(e.message, `unknown conversation: ${id}`);
  }
});

test('text: empty or over max_text_length (4000 characters, not bytes) is 107; malformed fields are 107', async () => {
  const a = unique('a');
  const id = await conversation([a]);
  const t = await tab(a);
  for (const text of ['', 'x'.repeat(4001), 'é'.repeat(4001)]) {
    const err = await rpcError(t, 'chat.send', { conversation: id, text });
    assert.equal(err.code, 107, `text of ${text.length}: ${safeJson(err)}`);
    assert.ok(err.message.length > 0, 'the reason is in message');
  }
  assert.equal((await send(t, id, 'x'.repeat(4000))).message.text.length, 4000);
  assert.equal((await send(t, id, 'é'.repeat(4000))).message.text, 'é'.repeat(4000));
  for (const data of [{ text: 'no conversation' }, { conversation: id }, { conversation: id, text: 42 },
    { conversation: 7, text: 'x' }]) {
    const err = await rpcError(t, 'chat.send', data);
    assert.equal(err.code, 107, `${safeJson(data)}: ${safeJson(err)}`);
  }
  assert.equal((await rpcError(t, 'chat.read', { conversation: id, message_id: 'one' })).code, 107);
  assert.equal((await rpcError(t, 'chat.history', { conversation: id, before: 'x' })).code, 107);
  assert.equal((await apiError('chat_post', { conversation: id, text: 'y'.repeat(4001) })).code, 107);
  const { messages } = await rpc(t, 'chat.history', { conversation: id });
  assert.equal(messages.length, 2, 'only the two valid messages were stored');
});

test('typing reaches the other members and is not stored', async () => {
  const [a, b] = [unique('a'), unique('b')];
  const id = await conversation([a, b]);
  const [ta, tb] = await Promise.all([tab(a), tab(b)]);
  await subscribed(ta, `chat:${id}`);
  const subB = await subscribed(tb, `chat:${id}`);
  const typing = chatPush(subB, 'typing');
  assert.deepEqual(await rpc(ta, 'chat.typing', { conversation: id }), {});
  assert.deepEqual(await typing, { type: 'typing', user: a });
  const { messages, has_more: hasMore } = await rpc(tb, 'chat.history', { conversation: id });
  assert.deepEqual(messages, []);
  assert.equal(hasMore, false);
  assert.deepEqual((await rpc(tb, 'chat.list', {})).conversations.find((c) => c.id === id).unread, 0);
});

test('read receipts: chat.read answers my unread count, pushes a read receipt and my chat_unread to every tab', async () => {
  const [a, b] = [unique('a'), unique('b')];
  const id = await conversation([a, b]);
  const [ta, b1, b2] = await Promise.all([tab(a), tab(b), tab(b)]);
  const subA = await subscribed(ta, `chat:${id}`);
  const subB2 = await subscribed(b2, `chat:${id}`);

  // each message from a raises b's count in both of b's tabs
  const ids = [];
  for (let i = 1; i <= 3; i++) {
    const counted = Promise.all([unreadPush(b1, b, id, i), unreadPush(b2, b, id, i)]);
    ids.push((await send(ta, id, `m${i}`)).message.id);
    await counted;
  }
  const listed = (await rpc(b2, 'chat.list', {})).conversations.find((c) => c.id === id);
  assert.equal(listed.unread, 3);

  // b reads up to the second message in tab 1
  const receiptA = chatPush(subA, 'read', (d) => d.user === b);
  const receiptB2 = chatPush(subB2, 'read', (d) => d.user === b);
  const count2 = unreadPush(b2, b, id, 1);
  assert.deepEqual(await rpc(b1, 'chat.read', { conversation: id, message_id: ids[1] }), { unread: 1 });
  assert.deepEqual(await receiptA, { type: 'read', user: b, message_id: ids[1] });
  assert.deepEqual(await receiptB2, { type: 'read', user: b, message_id: ids[1] }, 'the second tab sees the read state');
  await count2;
  assert.equal((await rpc(b2, 'chat.list', {})).conversations.find((c) => c.id === id).unread, 1);

  // the mark never moves back
  assert.deepEqual(await rpc(b2, 'chat.read', { conversation: id, message_id: ids[0] }), { unread: 1 });
  assert.equal((await rpc(b1, 'chat.list', {})).conversations.find((c) => c.id === id).unread, 1);
  assert.equal((await rpcError(b1, 'chat.read', { conversation: id, message_id: -1 })).code, 107);

  // reading the last one in tab 2 -> tab 1 gets chat_unread 0
  const zero = unreadPush(b1, b, id, 0);
  assert.deepEqual(await rpc(b2, 'chat.read', { conversation: id, message_id: ids[2] }), { unread: 0 });
  await zero;

  // sending marks everything up to the new message read for the sender
  await send(ta, id, 'one more');
  const mineA = (await rpc(ta, 'chat.list', {})).conversations.find((c) => c.id === id);
  assert.equal(mineA.unread, 0);
  const sendB = unreadPush(b1, b, id, 0);
  await send(b2, id, 'reply');
  await sendB;
  assert.equal((await rpc(b1, 'chat.list', {})).conversations.find((c) => c.id === id).unread, 0);
});

test('chat_post: a system message and a message on behalf of a member are pushed and stored', async () => {
  const [a, b] = [unique('a'), unique('b')];
  const id = await conversation([a, b]);
  const ta = await tab(a);
  const sub = await subscribed(ta, `chat:${id}`);

  const sys = chatPush(sub, 'message', (d) => d.message.kind === 'system');
  const { message: posted } = await api('chat_post', { conversation: id, kind: 'system', text: 'Order status: shipped' });
  assert.equal(posted.kind, 'system');
  assert.equal(posted.text, 'Order status: shipped');
  assert.equal(posted.conversation, id);
  assert.deepEqual((await sys).message, posted);

  // kind defaults to system when no user is given
  const { message: dflt } = await api('chat_post', { conversation: id, text: 'default kind' });
  assert.equal(dflt.kind, 'system');

  const onBehalf = chatPush(sub, 'message', (d) => d.message.user === b);
  const unreadA = unreadPush(ta, a, id, 3);
  const { message: sent } = await api('chat_post', { conversation: id, user: b, text: "I'm on it", data: {} });
  assert.equal(sent.kind, 'message');
  assert.equal(sent.user, b);
  assert.deepEqual(sent.data, {});
  assert.deepEqual((await onBehalf).message, sent);
  await unreadA;

  const { messages } = await rpc(ta, 'chat.history', { conversation: id });
  assert.deepEqual(messages.map((m) => [m.kind, m.text]),
    [['system', 'Order status: shipped'], ['system', 'default kind'], ['message', "I'm on it"]]);
  const hist = await api('chat_history', { conversation: id });
  assert.deepEqual(hist.messages, messages);
  assert.equal(hist.has_more, false);
});

test('chat_add_members and chat_remove_members: members pushes; a removed member is unsubscribed and locked out', async () => {
  const [a, b, c] = [unique('a'), unique('b'), unique('c')];
  const id = await conversation([a, b]);
  const [ta, tb, tc] = await Promise.all([tab(a), tab(b), tab(c)]);
  const subA = await subscribed(ta, `chat:${id}`);
  const subB = await subscribed(tb, `chat:${id}`);
  const [refused, refusal] = await refusedSubscription(tc, `chat:${id}`);
  assert.equal(refusal.code, 103, 'c is not a member yet');
  tc.removeSubscription(refused);

  const added = chatPush(subA, 'members');
  const res = await api('chat_add_members', { conversation: id, members: [c] });
  assert.deepEqual([...res.members].sort(), [a, b, c].sort());
  const addPush = await added;
  assert.deepEqual([...addPush.members].sort(), [a, b, c].sort());
  assert.deepEqual(addPush.added, [c]);
  assert.deepEqual(addPush.removed, []);

  // c may now subscribe and send
  const subC = await subscribed(tc, `chat:${id}`);
  const fromC = chatPush(subB, 'message', (d) => d.message.user === c);
  await send(tc, id, 'hi, I am new');
  await fromC;

  // removing b: a sees the push, b's subscription ends
  const removed = chatPush(subA, 'members', (d) => d.removed?.length > 0);
  const bGone = waitFor(subB, 'unsubscribed', 5000);
  const res2 = await api('chat_remove_members', { conversation: id, members: [b] });
  assert.deepEqual([...res2.members].sort(), [a, c].sort());
  const rmPush = await removed;
  assert.deepEqual([...rmPush.members].sort(), [a, c].sort());
  assert.deepEqual(rmPush.removed, [b]);
  assert.deepEqual(rmPush.added, []);
  await bGone;
  assert.equal(subB.state, 'unsubscribed');
  assert.equal(tb.state, 'connected');

  // b gets no more messages and can no longer subscribe, read or send
  const stillC = chatPush(subC, 'message', (d) => d.message.text === 'after b left');
  const { message: after } = await send(ta, id, 'after b left');
  await stillC;
  tb.removeSubscription(subB);
  assert.equal((await refusedSubscription(tb, `chat:${id}`))[1].code, 103);
  assert.equal((await rpcError(tb, 'chat.send', { conversation: id, text: 'hey' })).code, 103);
  assert.equal((await rpcError(tb, 'chat.history', { conversation: id })).code, 103);
  assert.equal((await rpcError(tb, 'chat.read', { conversation: id, message_id: after.id })).code, 103);
  assert.equal((await rpcError(tb, 'chat.typing', { conversation: id })).code, 103);
  assert.equal((await rpc(tb, 'chat.list', {})).conversations.find((x) => x.id === id), undefined);
});

test('chat.list: my conversations, most recent first, with last_message and my unread; limit', async () => {
  const [me, peer, stranger] = [unique('me'), unique('peer'), unique('s')];
  const c1 = await conversation([me, peer]);
  const c2 = await conversation([me, peer]);
  const c3 = await conversation([me, peer]);
  const notMine = await conversation([peer, stranger]);
  const [tm, tp] = await Promise.all([tab(me), tab(peer)]);

  // each send in a later millisecond than the one before (same-millisecond
  // sends are the next test's subject)
  const sendLater = async (...args) => { await nextMillisecond(); return send(...args); };
  await sendLater(tp, c1, 'x');
  await sendLater(tp, c3, 'y1');
  const { message: lastC3 } = await sendLater(tp, c3, 'y2');
  await sendLater(tp, notMine, 'not for me');
  const { message: lastC2 } = await sendLater(tp, c2, 'w');
  await sendLater(tm, c1, 'my own');  // c1 is now the most recent; my own send leaves it read
  const { message: lastC1 } = await sendLater(tp, c1, 'z');

  const { conversations } = await rpc(tm, 'chat.list', {});
  assert.deepEqual(conversations.map((c) => c.id), [c1, c2, c3]);
  assert.deepEqual(conversations.map((c) => c.unread), [1, 1, 2]);
  assert.deepEqual(conversations.map((c) => c.last_message), [lastC1, lastC2, lastC3]);
  assert.equal(conversations[0].title, `Conversation ${c1}`);

  const limited = await rpc(tm, 'chat.list', { limit: 2 });
  assert.deepEqual(limited.conversations.map((c) => c.id), [c1, c2]);

  const peers = await rpc(tp, 'chat.list', {});
  assert.deepEqual(peers.conversations.map((c) => c.id), [c1, c2, notMine, c3]);
  assert.deepEqual(peers.conversations.map((c) => c.unread), [0, 0, 0, 0]);
});

test('chat.list: most recent first even for messages sent within the same millisecond', async () => {
  // Rounds of two new conversations; a message in the first, then one in the
  // second, back to back: the second conversation is then the most recent one.
  // Names are chosen so that the later one sorts after the earlier one, and
  // many rounds make some pairs of messages share a millisecond.
  const user = unique('fast');
  const t = await tab(user);
  const rounds = 400;
  const wrong = [];
  for (let round = 0; round < rounds; round++) {
    const base = unique('conv');
    const [earlier, later] = [`${base}-a`, `${base}-b`];
    await api('chat_create', { conversation: earlier, members: [user] });
    await api('chat_create', { conversation: later, members: [user] });
    const { message: m1 } = await send(t, earlier, 'first');
    const { message: m2 } = await send(t, later, 'second');
    const list = (await rpc(t, 'chat.list', { limit: 2 })).conversations.map((c) => c.id);
    if (list[0] !== later) wrong.push({ list, created_at: [m1.created_at, m2.created_at] });
  }
  assert.deepEqual(wrong, [],
    `${wrong.length} of ${rounds} rounds list the earlier conversation first, e.g. ${safeJson(wrong.slice(0, 3))}`);
});

test('chat.history pages backwards with before and has_more, each page oldest first; the API agrees', async () => {
  const a = unique('a');
  const id = await conversation([a]);
  const t = await tab(a);
  const ids = [];
  for (let i = 1; i <= 7; i++) ids.push((await send(t, id, `m${i}`)).message.id);
  assert.deepEqual(ids, [1, 2, 3, 4, 5, 6, 7]);

  const page = async (data) => {
    const r = await rpc(t, 'chat.history', { conversation: id, ...data });
    return [r.messages.map((m) => m.id), r.has_more];
  };
  assert.deepEqual(await page({ limit: 3 }), [[5, 6, 7], true]);
  assert.deepEqual(await page({ before: 5, limit: 3 }), [[2, 3, 4], true]);
  assert.deepEqual(await page({ before: 2, limit: 3 }), [[1], false]);
  assert.deepEqual(await page({ before: 1, limit: 3 }), [[], false]);
  assert.deepEqual(await page({ before: 4, limit: 3 }), [[1, 2, 3], false]);
  assert.deepEqual(await page({}), [[1, 2, 3, 4, 5, 6, 7], false], 'the default limit is 50');
  assert.deepEqual(await page({ limit: 100 }), [[1, 2, 3, 4, 5, 6, 7], false]);
  for (const limit of [0, 101]) {
    const err = await rpcError(t, 'chat.history', { conversation: id, limit });
    assert.equal(err.code, 107, `limit ${limit}: ${safeJson(err)}`);
  }
  const texts = (await rpc(t, 'chat.history', { conversation: id, limit: 2 })).messages.map((m) => m.text);
  assert.deepEqual(texts, ['m6', 'm7']);

  const apiPage = await api('chat_history', { conversation: id, before: 6, limit: 2 });
  assert.deepEqual(apiPage.messages.map((m) => m.id), [4, 5]);
  assert.equal(apiPage.has_more, true);
});

test('the conversation channel has presence and join/leave', async () => {
  const [a, b] = [unique('a'), unique('b')];
  const id = await conversation([a, b]);
  const [ta, tb] = await Promise.all([tab(a), tab(b)]);
  const subA = await subscribed(ta, `chat:${id}`, { joinLeave: true });
  const joined = waitFor(subA, 'join', 5000, (j) => j.info.user === b);
  const subB = await subscribed(tb, `chat:${id}`);
  assert.equal((await joined).channel, `chat:${id}`);
  const users = Object.values((await subA.presence()).clients).map((c) => c.user).sort();
  assert.deepEqual(users, [a, b].sort());
  const left = waitFor(subA, 'leave', 5000, (l) => l.info.user === b);
  subB.unsubscribe();
  await left;
});

test('an anonymous connection calling chat.* gets 103', async () => {
  const [anon] = await pool.connected(srv, {});
  const id = await conversation([unique('a')]);
  for (const [method, data] of [
    ['chat.list', {}],
    ['chat.history', { conversation: id }],
    ['chat.send', { conversation: id, text: 'hi' }],
    ['chat.typing', { conversation: id }],
    ['chat.read', { conversation: id, message_id: 1 }],
  ]) {
    const err = await rpcError(anon, method, data);
    assert.equal(err.code, 103, `${method}: ${safeJson(err)}`);
  }
  assert.equal((await refusedSubscription(anon, `chat:${id}`))[1].code, 103);
  assert.equal((await rpcError(anon, 'chat.nope', {})).code, 104, 'an unknown chat.* method');
});

test('with chat switched off, chat.* and the API answer 108', async () => {
  const off = await startHerald({}, { env: { HERALD_CHAT_ENABLED: 'false' } });
  try {
    const [c] = await pool.connected(off, { token: connToken('42') });
    const err = await rpcError(c, 'chat.list', {});
    assert.equal(err.code, 108, safeJson(err));
    const r = await off.apiRaw('chat_create', { conversation: 'x', members: ['42'] });
    assert.equal(r.json?.error?.code, 108, r.text);
  } finally {
    pool.closeAll();
    await off.stop();
  }
});
