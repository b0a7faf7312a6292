// Chat helper against a real herald: two users in one conversation, typing with
// expiry, read receipts, sync on (re)subscribe, idempotent send, errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { Chat, Inbox, HeraldError } from '../dist/index.js';
import { useHerald, once, none, unique, rejection } from './helpers.mjs';

const { api, connect } = useHerald();

/** A conversation with members a and b (created by the backend), each side's Chat and Conversation, synced. */
async function pair(chatOpts = {}) {
  const a = unique('a');
  const b = unique('b');
  const id = unique('order');
  await api('chat_create', { conversation: id, title: `Order ${id}`, members: [a, b] });
  const ca = await connect(a);
  const cb = await connect(b);
  const chatA = new Chat(ca, { userId: a, ...chatOpts });
  const chatB = new Chat(cb, { userId: b, ...chatOpts });
  const convA = chatA.conversation(id);
  const convB = chatB.conversation(id);
  const [syncA, syncB] = await Promise.all([convA.ready(), convB.ready()]);
  return { a, b, id, ca, cb, chatA, chatB, convA, convB, syncA, syncB };
}

test('send and receive between two users; history and chat.list agree', async () => {
  const { a, b, id, convA, convB, chatA, chatB, syncA } = await pair();
  assert.deepEqual(syncA.messages, []);
  assert.equal(syncA.has_more, false);
  assert.equal(chatA.conversation(id), convA, 'the same open conversation');

  const atB = once(convB, 'message');
  const sent = await convA.send('Hello', { data: { n: 1 } });
  assert.equal(sent.conversation, id);
  assert.equal(sent.user, a);
  assert.equal(sent.kind, 'message');
  assert.equal(sent.text, 'Hello');
  assert.deepEqual(sent.data, { n: 1 });
  assert.match(sent.client_msg_id, /^c-/, 'a generated client_msg_id');
  const got = await atB;
  assert.deepEqual(got, sent);

  const back = once(convA, 'message', { predicate: (m) => m.user === b });
  const reply = await convB.send('Hi there');
  assert.equal((await back).id, reply.id);
  assert.equal(reply.id, sent.id + 1);

  const page = await convB.history();
  assert.deepEqual(page.messages.map((m) => m.text), ['Hello', 'Hi there']);
  assert.equal(page.has_more, false);
  const older = await convB.history({ before: reply.id, limit: 1 });
  assert.deepEqual(older.messages.map((m) => m.id), [sent.id]);

  const [mine] = (await chatA.list()).filter((c) => c.id === id);
  assert.ok(mine, 'chat.list has the conversation');
  assert.equal(mine.last_message.id, reply.id);
  assert.equal(mine.unread, 1, 'the reply is unread for a');
  assert.deepEqual([...mine.members].sort(), [a, b].sort());
  const [theirs] = (await chatB.list({ limit: 10 })).filter((c) => c.id === id);
  assert.equal(theirs.unread, 0, 'sending marks read for the sender');
});

test('send retries a lost reply with the same client_msg_id: stored and delivered once', async () => {
  const { ca, convA, convB } = await pair({ sendRetryDelayMs: 20 });
  // the first chat.send reaches the server, but its reply is "lost" (an SDK timeout)
  const realRpc = ca.rpc.bind(ca);
  const calls = [];
  ca.rpc = async (method, data) => {
    if (method === 'chat.send') calls.push(data);
    const reply = await realRpc(method, data);
    if (method === 'chat.send' && calls.length === 1) throw { code: 1, message: 'timeout' };
    return reply;
  };
  const pushes = [];
  convB.on('message', (m) => pushes.push(m));
  const sent = await convA.send('exactly once');
  assert.equal(calls.length, 2, 'sent twice');
  assert.equal(calls[0].client_msg_id, calls[1].client_msg_id, 'with the same client_msg_id');
  assert.equal(sent.client_msg_id, calls[0].client_msg_id);
  const page = await convB.history();
  assert.deepEqual(page.messages.map((m) => m.id), [sent.id], 'stored once');
  await none(convB, 'message', 500);
  assert.deepEqual(pushes.map((m) => m.id), [sent.id], 'delivered once');

  // a refusal is not retried
  calls.length = 0;
  const err = await rejection(convA.send(''));
  assert.ok(err instanceof HeraldError);
  assert.equal(err.code, 107);
  assert.equal(calls.length, 1);
});

test('send is idempotent on clientMsgId', async () => {
  const { convA, convB } = await pair();
  const first = await convA.send('once', { clientMsgId: 'retry-1' });
  const again = await convA.send('once', { clientMsgId: 'retry-1' });
  assert.deepEqual(again, first);
  const page = await convB.history();
  assert.deepEqual(page.messages.map((m) => m.id), [first.id]);
});

test('typing is throttled, reaches the other user and expires', async () => {
  const { a, convA, convB } = await pair({ typingTimeoutMs: 600 });
  assert.equal(new Chat(convA.centrifuge).options.typingTimeoutMs, 5000, 'the default expiry is 5 s');
  assert.equal(new Chat(convA.centrifuge).options.typingThrottleMs, 2000, 'the default throttle is 2 s');
  const typing = once(convB, 'typing');
  const ownTyping = none(convA, 'typing', 800);
  assert.equal(await convA.typing(), true);
  assert.equal(await convA.typing(), false, 'a second call within 2 s sends nothing');
  const t = await typing;
  const seenAt = Date.now();
  assert.deepEqual(t, { conversation: convB.id, user: a });
  assert.deepEqual(convB.typingUsers, [a]);
  const stopped = await once(convB, 'typing_stopped', { timeoutMs: 3000 });
  const after = Date.now() - seenAt;
  assert.deepEqual(stopped, { conversation: convB.id, user: a });
  assert.ok(after >= 500, `expired after ${after} ms`);
  assert.deepEqual(convB.typingUsers, []);
  await ownTyping;
});

test('a message from a typing user ends their typing indicator', async () => {
  const { a, convA, convB } = await pair();
  const typing = once(convB, 'typing');
  await convA.typing();
  await typing;
  const stopped = once(convB, 'typing_stopped', { timeoutMs: 2000 });
  await convA.send('done typing');
  assert.equal((await stopped).user, a);
});

test('read receipts reach the sender; chat_unread reaches the reader\'s inbox', async () => {
  const { b, id, cb, convA, convB } = await pair();
  const inboxB = new Inbox(cb, b);
  const unreadB = once(inboxB, 'chat_unread', { predicate: (u) => u.unread === 1 });
  const sent = await convA.send('please read');
  assert.deepEqual(await unreadB, { conversation: id, unread: 1 });

  const receipt = once(convA, 'read', { predicate: (r) => r.user === b });
  const zero = once(inboxB, 'chat_unread', { predicate: (u) => u.unread === 0 });
  assert.equal(await convB.read(sent.id), 0);
  assert.deepEqual(await receipt, { conversation: id, user: b, message_id: sent.id });
  assert.deepEqual(await zero, { conversation: id, unread: 0 });
});

test('every (re)subscribe emits synced with the latest history', async () => {
  const { ca, convA, convB } = await pair();
  await convB.send('one');
  await convB.send('two');
  const resynced = once(convA, 'synced');
  const disconnected = once(ca, 'disconnected');
  ca.disconnect();
  await disconnected;
  await convB.send('three (while a was away)');
  ca.connect();
  const s = await resynced;
  assert.deepEqual(s.messages.map((m) => m.text), ['one', 'two', 'three (while a was away)']);
  assert.equal(s.has_more, false);
});

test('a backend system post and a membership change arrive as events', async () => {
  const { id, convA, convB } = await pair();
  const sys = once(convA, 'message', { predicate: (m) => m.kind === 'system' });
  await api('chat_post', { conversation: id, kind: 'system', text: 'Order status: shipped' });
  assert.equal((await sys).text, 'Order status: shipped');

  const c = unique('c');
  const members = once(convB, 'members');
  await api('chat_add_members', { conversation: id, members: [c] });
  const m = await members;
  assert.deepEqual(m.added, [c]);
  assert.ok(m.members.includes(c));
});

test('a removed member\'s conversation ends with unsubscribed; added back, it syncs again', async () => {
  const { b, id, chatB, convA, convB } = await pair();
  const ended = once(convB, 'unsubscribed');
  const members = once(convA, 'members', { predicate: (m) => m.removed.length > 0 });
  await api('chat_remove_members', { conversation: id, members: [b] });
  assert.deepEqual((await members).removed, [b]);
  await ended;
  assert.equal(convB.subscription.state, 'unsubscribed');
  const refused = await rejection(convB.send('still here?'));
  assert.equal(refused.code, 103);

  await convA.send('while b was out');
  await api('chat_add_members', { conversation: id, members: [b] });
  const again = chatB.conversation(id);
  assert.equal(again, convB, 'the same conversation object, subscribed again');
  const synced = await again.ready();
  assert.deepEqual(synced.messages.map((m) => m.text), ['while b was out']);
});

test('a non-member is refused with 103; unsubscribe ends the conversation', async () => {
  const { id, convA } = await pair();
  const stranger = await connect(unique('x'));
  const conv = new Chat(stranger).conversation(id);
  const err = await rejection(conv.ready(5000));
  assert.ok(err instanceof HeraldError, String(err));
  assert.equal(err.code, 103);
  const sendErr = await rejection(conv.send('let me in'));
  assert.ok(sendErr instanceof HeraldError);
  assert.equal(sendErr.code, 103);

  const ended = once(convA, 'unsubscribed');
  convA.unsubscribe();
  await ended.catch(() => {});
  assert.equal(convA.subscription.state, 'unsubscribed');
});
