// Recovery with the SDK: a client loses its connection while publications go
// on, reconnects by itself and recovers what it missed (or is told it could
// not, with nothing replayed); cache mode hands a new subscriber the latest
// publication. Every test runs against in-memory and durable history.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useHerald, connToken, goOffline, goOnline, safeJson } from './harness.js';
import {
  STORAGE_MODES, historyNs, publishSeq, publishSentinel, oneEpoch, pairs, trackedSubscription,
} from './streams.js';

/** Ways to lose the connection: (srv, client, connectedCtx, user) => cut. */
const CUTS = {
  'terminated WebSocket': (srv, client) => client.wire.socket.terminate(),
  'API disconnect 3011': (srv, client, connCtx, user) => srv.api('disconnect', {
    user, client: connCtx.client, disconnect: { code: 3011, reason: 'force reconnect' },
  }),
};

/** Kinds of the logged events, e.g. ['subscribed', 'publication', ...]. */
const kinds = (log) => log.events.map(([kind]) => kind);
const repeat = (kind, k) => Array(k).fill(kind);

/** Offsets of the publications in the client's last subscribe reply on the wire. */
function replyOffsets(client) {
  const replies = client.wire.log.filter(([dir, f]) => dir === 'in' && f.subscribe).map(([, f]) => f.subscribe);
  assert.ok(replies.length > 0, 'a subscribe reply on the wire');
  return (replies.at(-1).publications || []).map((p) => p.offset);
}

for (const mode of STORAGE_MODES) {
  describe(mode.name, () => {
    const { srv, pool } = useHerald({
      storage: mode.storage,
      namespaces: [
        historyNs('rec'),
        historyNs('small', { history_size: 3 }),
        historyNs('cache', { force_recovery_mode: 'cache' }),
      ],
    });

    /**
     * Subscribe a fresh client to `channel`, receive `before` publications
     * live, lose the connection (`cut`), publish `during` more while it is
     * down, let it come back and publish a sentinel once it is resubscribed.
     * Returns { client, log, live, missed, sentinel, first, again }
     * (first/again: the two 'subscribed' contexts).
     */
    async function dropAndReturn({ channel, user, before, during, cut = CUTS['terminated WebSocket'] }) {
      const [client, connCtx] = await pool.connected(srv, { token: connToken(user) });
      const { log, ctx: first } = await trackedSubscription(client, channel);
      const live = await publishSeq(srv, channel, before);
      await log.waitPubs(before);

      await goOffline(client, () => cut(srv, client, connCtx, user));
      const missed = await publishSeq(srv, channel, during, before + 1);
      assert.equal(client.state, 'connecting', 'still offline while the missed ones were published');
      await goOnline(client);
      const again = await log.waitSubscribed(2);
      const sentinel = await publishSentinel(srv, [log], channel, before + during + 1);
      oneEpoch([...live, ...missed, sentinel]);
      return { client, log, live, missed, sentinel, first, again };
    }

    let seq = 0;
    for (const [cutName, cut] of Object.entries(CUTS)) {
      test(`recovery after a lost connection (${cutName}): missed publications in order, no gap, no duplicate`, async () => {
        seq += 1;
        const r = await dropAndReturn({ channel: `rec:drop${seq}`, user: `r${seq}`, before: 3, during: 5, cut });
        assert.equal(r.first.recoverable, true, safeJson(r.first));
        assert.equal(r.first.wasRecovering, false, safeJson(r.first));
        assert.equal(r.again.wasRecovering, true, safeJson(r.again));
        assert.equal(r.again.recovered, true, safeJson(r.again));
        assert.equal(r.again.streamPosition?.epoch, r.sentinel.epoch, safeJson(r.again));

        const all = [...r.live, ...r.missed, r.sentinel];
        assert.deepEqual(all.map((p) => p.offset), [1, 2, 3, 4, 5, 6, 7, 8, 9], 'API offsets');
        assert.deepEqual(pairs(r.log.pubs), pairs(all), 'received across the drop');
        assert.deepEqual(replyOffsets(r.client), [4, 5, 6, 7, 8], 'recovered in the subscribe reply');
        assert.deepEqual(kinds(r.log), [
          'subscribed', ...repeat('publication', 3), 'subscribed', ...repeat('publication', 6),
        ], 'missed publications come after the resubscribe');
      });
    }

    test('recovery of exactly the retained history (history_size 3, 3 missed) succeeds', async () => {
      const r = await dropAndReturn({ channel: 'small:edge', user: 'r10', before: 2, during: 3 });
      assert.equal(r.again.wasRecovering, true, safeJson(r.again));
      assert.equal(r.again.recovered, true, safeJson(r.again));
      assert.deepEqual(pairs(r.log.pubs), pairs([...r.live, ...r.missed, r.sentinel]));
      assert.deepEqual(replyOffsets(r.client), [3, 4, 5], 'recovered in the subscribe reply');
    });

    test('refused recovery when the gap was trimmed: recovered=false and nothing from the gap is replayed', async () => {
      const r = await dropAndReturn({ channel: 'small:gap', user: 'r11', before: 2, during: 6 });
      assert.equal(r.again.wasRecovering, true, safeJson(r.again));
      assert.equal(r.again.recovered, false, safeJson(r.again));
      assert.deepEqual(r.again.streamPosition, { offset: 8, epoch: r.sentinel.epoch },
        `position is the stream top: ${safeJson(r.again)}`);
      assert.deepEqual(pairs(r.log.pubs), pairs([...r.live, r.sentinel]), 'no partial replay');
      assert.deepEqual(replyOffsets(r.client), [], 'no publications in the subscribe reply');
      assert.deepEqual(kinds(r.log), [
        'subscribed', ...repeat('publication', 2), 'subscribed', 'publication',
      ]);
    });

    test('cache mode: a new subscriber gets the latest publication with the subscribe, then live ones', async () => {
      const ch = 'cache:state';
      const states = await publishSeq(srv, ch, 3);
      const [c] = await pool.connected(srv, { token: connToken('r20') });
      const { log, ctx } = await trackedSubscription(c, ch);
      // delivered with the subscribe reply: already there when subscribe resolves
      assert.deepEqual(kinds(log), ['subscribed', 'publication'], safeJson(log.events));
      assert.deepEqual(pairs(log.pubs), pairs([states[2]]), 'the latest state only');
      assert.equal(ctx.recoverable, true, safeJson(ctx));
      assert.equal(ctx.streamPosition?.epoch, states[2].epoch, safeJson(ctx));

      const next = await publishSentinel(srv, [log], ch, 4);
      assert.deepEqual(pairs(log.pubs), pairs([states[2], next]), 'then live updates');

      // a second newcomer gets the new latest one
      const [d] = await pool.connected(srv, { token: connToken('r21') });
      const second = await trackedSubscription(d, ch);
      assert.deepEqual(pairs(second.log.pubs), pairs([next]));
    });

    test('cache mode on a channel with no publication yet: nothing with the subscribe', async () => {
      const [c] = await pool.connected(srv, { token: connToken('r22') });
      const { log } = await trackedSubscription(c, 'cache:empty');
      const first = await publishSentinel(srv, [log], 'cache:empty', 1);
      assert.deepEqual(kinds(log), ['subscribed', 'publication']);
      assert.deepEqual(pairs(log.pubs), pairs([first]));
    });
  });
}
