// History from the SDK (sub.history) and the server API, idempotent publish
// and concurrent publishing: offsets and epoch as the API publish answers say.
// Every test runs against in-memory and durable (SQLite) history.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { useHerald, connToken, subscribed, rejection, safeJson } from './harness.js';
import {
  STORAGE_MODES, historyNs, publish, publishSeq, publishSentinel, oneEpoch, pairs, trackedSubscription,
} from './streams.js';

for (const mode of STORAGE_MODES) {
  describe(mode.name, () => {
    const { srv, pool } = useHerald({
      storage: mode.storage,
      namespaces: [
        historyNs('h', { history_size: 10 }),
        { name: 'nohist', allow_subscribe_for_client: true, allow_history_for_subscriber: true },
      ],
    });

    /** API history; returns the result, failing on an error answer. */
    async function apiHistory(body) {
      const r = await srv.api('history', body);
      assert.ok(r.result, `history ${safeJson(body)} -> ${safeJson(r)}`);
      return r.result;
    }

    /** API history expected to answer an error; returns its code. */
    async function apiHistoryError(body) {
      const r = await srv.apiRaw('history', body);
      assert.ok(r.json?.error, `history ${safeJson(body)} should fail: HTTP ${r.status} ${r.text}`);
      return r.json.error.code;
    }

    test('history oldest-first and newest-first, with limit and since, from the SDK and the API', async () => {
      const ch = 'h:order';
      const sent = await publishSeq(srv, ch, 5);
      assert.deepEqual(sent.map((s) => s.offset), [1, 2, 3, 4, 5], safeJson(sent));
      const epoch = oneEpoch(sent);
      const newestFirst = [...sent].reverse();

      const [c] = await pool.connected(srv, { token: connToken('h1') });
      const sub = await subscribed(c, ch);
      const cases = [
        [{ limit: 10 }, sent],
        [{ limit: 10, reverse: true }, newestFirst],
        [{ limit: 2 }, sent.slice(0, 2)],
        [{ limit: 2, reverse: true }, newestFirst.slice(0, 2)],
        [{ limit: 10, since: { offset: 2, epoch } }, sent.slice(2)],
        [{}, []], // no limit: only the stream position
      ];
      for (const [opts, want] of cases) {
        const h = await sub.history(opts);
        assert.deepEqual(pairs(h.publications), pairs(want), `sub.history(${safeJson(opts)}): ${safeJson(h)}`);
        assert.equal(h.epoch, epoch, `epoch of sub.history(${safeJson(opts)})`);
        assert.equal(h.offset, 5, `stream top of sub.history(${safeJson(opts)})`);
        // the SDK gives a publication channel and offset
        for (const p of h.publications) assert.equal(p.channel, ch);
      }

      const all = await apiHistory({ channel: ch, limit: -1 });
      assert.deepEqual(pairs(all.publications), pairs(sent), safeJson(all));
      assert.equal(all.epoch, epoch);
      assert.equal(all.offset, 5);
      const rev = await apiHistory({ channel: ch, limit: 3, reverse: true });
      assert.deepEqual(pairs(rev.publications), pairs(newestFirst.slice(0, 3)), safeJson(rev));
      const pos = await apiHistory({ channel: ch });
      assert.deepEqual(pos.publications ?? [], [], `no limit: position only: ${safeJson(pos)}`);
      assert.equal(pos.offset, 5);
      assert.equal(pos.epoch, epoch);
    });

    test('history keeps the newest history_size publications; a trimmed or foreign position is 112', async () => {
      const ch = 'h:trim';
      const sent = await publishSeq(srv, ch, 13);
      const epoch = oneEpoch(sent);
      const all = await apiHistory({ channel: ch, limit: -1 });
      assert.deepEqual(pairs(all.publications), pairs(sent.slice(3)), `history_size 10: ${safeJson(all)}`);
      assert.equal(all.offset, 13);

      // from a retained position: fine; from a trimmed one or another epoch: 112
      const tail = await apiHistory({ channel: ch, limit: -1, since: { offset: 10, epoch } });
      assert.deepEqual(pairs(tail.publications), pairs(sent.slice(10)));
      assert.equal(await apiHistoryError({ channel: ch, limit: -1, since: { offset: 1, epoch } }), 112);
      assert.equal(await apiHistoryError({ channel: ch, limit: -1, since: { offset: 12, epoch: `${epoch}x` } }), 112);

      const [c] = await pool.connected(srv, { token: connToken('h2') });
      const sub = await subscribed(c, ch);
      const err = await rejection(sub.history({ limit: 5, since: { offset: 1, epoch } }), 5000, 'sub.history');
      assert.equal(err.code, 112, safeJson(err));
    });

    test('history where the namespace keeps none is 108, from the SDK and the API', async () => {
      const ch = 'nohist:a';
      const r = await srv.api('publish', { channel: ch, data: { n: 1 } });
      assert.deepEqual(r, { result: {} }, 'publish without history answers no offset');
      assert.equal(await apiHistoryError({ channel: ch, limit: 10 }), 108);
      const [c] = await pool.connected(srv, { token: connToken('h3') });
      const sub = await subscribed(c, ch);
      const err = await rejection(sub.history({ limit: 10 }), 5000, 'sub.history');
      assert.equal(err.code, 108, safeJson(err));
    });

    test('idempotency_key: a repeated publish returns the original offset/epoch and publishes nothing', async () => {
      const ch = 'h:idem';
      const [c] = await pool.connected(srv, { token: connToken('h4') });
      const { log } = await trackedSubscription(c, ch);

      const first = await publish(srv, ch, { n: 1 }, { idempotency_key: 'key-1' });
      const again = await publish(srv, ch, { n: 2 }, { idempotency_key: 'key-1' });
      assert.deepEqual(again, first, 'the repeat answers the original position');
      const sentinel = await publishSentinel(srv, [log], ch, 3);
      assert.equal(sentinel.offset, first.offset + 1, 'the repeat took no offset');
      assert.deepEqual(pairs(log.pubs), pairs([{ n: 1, ...first }, sentinel]), 'one publication per key');

      const hist = await apiHistory({ channel: ch, limit: -1 });
      assert.deepEqual(pairs(hist.publications), pairs([{ n: 1, ...first }, sentinel]));

      // the key is per channel: the same key elsewhere publishes
      const other = await publish(srv, 'h:idem-other', { n: 7 }, { idempotency_key: 'key-1' });
      const otherHist = await apiHistory({ channel: 'h:idem-other', limit: -1 });
      assert.deepEqual(pairs(otherHist.publications), pairs([{ n: 7, ...other }]));
    });

    test('60 concurrent API publishes: 60 publications, increasing offsets, the offsets the API answered', async () => {
      const ch = 'h:burst';
      const count = 60;
      const [c] = await pool.connected(srv, { token: connToken('h5') });
      const { log } = await trackedSubscription(c, ch);

      const answers = await Promise.all(
        Array.from({ length: count }, (_, i) => publish(srv, ch, { n: i }).then((a) => ({ n: i, ...a }))),
      );
      oneEpoch(answers);
      const answered = answers.map((a) => a.offset).sort((x, y) => x - y);
      assert.deepEqual(answered, Array.from({ length: count }, (_, i) => i + 1), 'distinct offsets 1..60');

      const sentinel = await publishSentinel(srv, [log], ch, count);
      const got = log.pubs.slice(0, -1);
      assert.equal(log.pubs.length, count + 1, `exactly ${count} publications before the sentinel`);
      assert.equal(log.pubs.at(-1).offset, sentinel.offset);
      for (let i = 1; i < got.length; i++) {
        assert.ok(got[i].offset > got[i - 1].offset, `offsets strictly increase: ${safeJson(pairs(got))}`);
      }
      assert.deepEqual(got.map((p) => p.offset), answered, 'received offsets = answered offsets');
      const byN = new Map(answers.map((a) => [a.n, a.offset]));
      for (const p of got) assert.equal(p.offset, byN.get(p.data.n), `offset of publication ${safeJson(p.data)}`);
    });
  });
}
