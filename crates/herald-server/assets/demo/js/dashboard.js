// Tenant dashboard: live stats of tenant 7 on `dashboard:tenant-7`. The channel keeps
// history, so a window that opens asks for the latest publication
// (sub.history({limit: 1, reverse: true})) and then follows the live ones.
import { $, el, toast, flash, money, ago, pick } from './ui.js';
import { backend } from './backend.js';

const CHANNEL = 'dashboard:tenant-7';
const BOOKINGS = [
  ['Win boost ×5', 29], ['Placement matches ×10', 45], ['Raid carry · Vault of Glass', 35],
  ['Coaching session · 2 h', 40], ['Mythic+ 15 key, timed', 55], ['Rank boost · Silver → Gold', 59],
];
const SEED = {
  type: 'stats', rev: 1, bookings: 126, revenue: 5742, boosters_online: 14,
  hourly: [4, 7, 5, 9, 12, 10, 14, 11, 16, 13, 15, 10],
  recent: [
    { title: 'Arena rating 1800 → 2100', price: 119, at: 0 },
    { title: 'Placement matches ×10', price: 45, at: 0 },
    { title: 'Win boost ×5', price: 29, at: 0 },
  ],
};

export class Dashboard {
  constructor({ centrifuge, me, conn }) {
    this.me = me;
    this.state = null;
    this.sub = centrifuge.newSubscription(CHANNEL);
    conn.watch(this.sub);
    this.sub.on('publication', (ctx) => this.apply(ctx.data, true));
    this.sub.on('subscribed', () => { void this.load(); });
    this.sub.subscribe();
    // One booking after the other, each building on the numbers the last one sent.
    this.queue = Promise.resolve();
    $('dash-booking').addEventListener('click', () => {
      this.queue = this.queue.then(() => this.newBooking())
        .catch((e) => toast('Backend call failed', String(e.message || e), 'error'));
    });
  }

  /** The latest state from the channel's history; seeds one on a fresh server. */
  async load() {
    try {
      const { publications } = await this.sub.history({ limit: 1, reverse: true });
      if (publications.length) {
        this.apply(publications[0].data, false);
      } else {
        const now = Date.now();
        const seed = { ...SEED, updated_at: now, recent: SEED.recent.map((r, i) => ({ ...r, at: now - (i + 1) * 7 * 60000 })) };
        await backend('publish', { channel: CHANNEL, data: seed, idempotency_key: 'seed-dashboard' });
      }
    } catch (e) {
      toast('Could not load the dashboard', String(e.message || e), 'error');
    }
  }

  apply(stats, live) {
    if (!stats || stats.type !== 'stats') return;
    if (this.state && this.state.rev >= stats.rev) return;
    const before = this.state;
    this.state = stats;
    this.render(before);
    if (live && before && stats.last) {
      toast(`New booking · ${money(stats.last.price)}`, `${stats.last.title} · Tenant 7 now at ${stats.bookings} today`, 'success');
    }
  }

  render(before) {
    const s = this.state;
    const set = (id, value, changed) => {
      const node = $(id);
      node.textContent = value;
      if (changed) flash(node.parentElement);
    };
    set('dash-bookings', s.bookings.toLocaleString('en-US'), before && before.bookings !== s.bookings);
    set('dash-revenue', money(s.revenue), before && before.revenue !== s.revenue);
    set('dash-avg', money(s.bookings ? s.revenue / s.bookings : 0), false);
    set('dash-online', String(s.boosters_online), before && before.boosters_online !== s.boosters_online);
    const max = Math.max(1, ...s.hourly);
    $('dash-bars').replaceChildren(...s.hourly.map((n, i) => el('div.bar', {
      style: `height:${Math.max(4, Math.round((n / max) * 100))}%`,
      title: i === s.hourly.length - 1 ? `${n} bookings this hour` : `${n} bookings, ${s.hourly.length - 1 - i} h ago`,
    })));
    $('dash-recent').replaceChildren(...s.recent.map((r) => el('li', {},
      el('span', {}, r.title, ' ', el('span.muted', { dataset: { ago: r.at }, text: ago(r.at) })),
      el('span.amount', { text: money(r.price) }))));
  }

  /** Your backend recorded a booking: publish the tenant's new numbers. */
  async newBooking() {
    // Build on the newest of what arrived and what this window sent, so two quick
    // clicks count two bookings even before the first publication is back.
    const sent = this.sent && (!this.state || this.sent.rev > this.state.rev) ? this.sent : null;
    const s = sent || this.state || { ...SEED, rev: 0 };
    const [title, price] = pick(BOOKINGS);
    const hourly = s.hourly.slice();
    hourly[hourly.length - 1] += 1;
    const last = { title, price, at: Date.now() };
    const next = {
      ...s,
      rev: s.rev + 1,
      bookings: s.bookings + 1,
      revenue: s.revenue + price,
      boosters_online: Math.max(3, s.boosters_online + pick([-1, 0, 0, 1])),
      hourly,
      recent: [last, ...s.recent].slice(0, 3),
      last,
      updated_at: Date.now(),
    };
    await backend('publish', { channel: CHANNEL, data: next });
    this.sent = next;
  }
}
