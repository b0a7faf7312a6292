// Orders board. Every order is a live document on its own channel `orders:<id>`, and
// `orders:index` lists the order ids. The `orders` namespace runs in cache mode
// (force_recovery_mode = "cache"), so subscribing returns the channel's latest
// publication at once: a window opened later shows the current state first, and a
// reconnecting window recovers what it missed.
//
// The Backend buttons publish the whole new order state with POST /api/publish, as
// your backend would after saving it; every window (this one included) renders it
// when the publication arrives, never before.
import { $, el, toast, flash, money, ago, pick, roleOf, ROLES } from './ui.js';
import { backend } from './backend.js';

const STATUSES = ['pending', 'paid', 'in_progress', 'completed'];
const STATUS_LABEL = { pending: 'Pending', paid: 'Paid', in_progress: 'In progress', completed: 'Completed' };
const MEMBERS = Object.values(ROLES).map((r) => r.user);

const CATALOG = [
  { title: 'Rank boost · Gold IV → Platinum IV', game: 'League of Legends', price: 89 },
  { title: 'Placement matches ×10', game: 'Valorant', price: 45 },
  { title: 'Raid carry · Vault of Glass', game: 'Destiny 2', price: 35 },
  { title: 'Win boost ×5', game: 'Overwatch 2', price: 29 },
  { title: 'Arena rating 1800 → 2100', game: 'World of Warcraft', price: 119 },
  { title: 'Mythic+ 15 key, timed', game: 'World of Warcraft', price: 55 },
  { title: 'Division boost · Diamond → Master', game: 'Rocket League', price: 75 },
  { title: 'Coaching session · 2 h', game: 'Counter-Strike 2', price: 40 },
];

/** The first orders, published once when `orders:index` has nothing yet. */
const SEED = [
  { id: 1041, ...CATALOG[0], status: 'in_progress', progress: 60 },
  { id: 1042, ...CATALOG[1], status: 'paid', progress: 0 },
  { id: 1043, ...CATALOG[2], status: 'pending', progress: 0 },
];
const SEED_CHAT = [
  { user: 'customer-1', text: 'Hey Sam! Any chance to finish before the weekend?' },
  { user: 'booster-1', text: 'Yes, 3 wins to go. I will play tonight and keep you posted here.' },
  { kind: 'system', text: 'Progress: 60%' },
];

export const conversationOf = (id) => `order-${id}`;

export class OrdersBoard {
  constructor({ centrifuge, me, conn, onSelect }) {
    this.centrifuge = centrifuge;
    this.me = me;
    this.conn = conn;
    this.onSelect = onSelect;
    this.orders = new Map();   // id -> order state (latest publication)
    this.rows = new Map();     // id -> <tr>
    this.subs = new Map();     // id -> Subscription
    this.index = [];
    this.selected = null;
    this.chatUnread = new Map();
    this.sent = new Map();     // id -> the last state this window published
    this.fresh = new Set();    // ids created while this window was open
    this.sentIndex = [];       // the last order list this window published
    this.seeding = null;

    this.indexSub = centrifuge.newSubscription('orders:index');
    conn.watch(this.indexSub);
    this.indexSub.on('publication', (ctx) => this.onIndex(ctx.data));
    this.indexSub.on('subscribed', () => { void this.checkSeed(); });
    this.indexSub.subscribe();

    $('order-create').addEventListener('click', () => this.guard(() => this.create()));
    $('order-status').addEventListener('click', () => this.guard(() => this.advanceStatus()));
    $('order-progress').addEventListener('click', () => this.guard(() => this.addProgress()));
    $('order-price').addEventListener('click', () => this.guard(() => this.changePrice()));
    this.updateButtons();
  }

  /** Runs backend actions one after the other: each builds on the state the last one sent. */
  guard(action) {
    this.queue = (this.queue || Promise.resolve()).then(action).catch((e) => {
      toast('Backend call failed', String(e.message || e), 'error');
    });
    return this.queue;
  }

  // ------------------------------------------------------------- live ----

  onIndex(data) {
    if (!data || data.type !== 'index' || !Array.isArray(data.orders)) return;
    // Orders added by a live index update are new: their first state gets a toast.
    if (this.index.length) for (const id of data.orders) if (!this.index.includes(id)) this.fresh.add(id);
    this.index = data.orders.slice();
    for (const id of this.index) this.follow(id);
  }

  /** Subscribes to `orders:<id>`; cache mode answers the current state in the reply. */
  follow(id) {
    if (this.subs.has(id)) return;
    const sub = this.centrifuge.newSubscription(`orders:${id}`);
    this.subs.set(id, sub);
    this.conn.watch(sub);
    sub.on('publication', (ctx) => this.onOrder(ctx.data));
    sub.subscribe();
  }

  onOrder(order) {
    if (!order || typeof order.id !== 'number') return;
    const before = this.orders.get(order.id);
    if (before && before.rev >= order.rev) return; // a publication seen already
    this.orders.set(order.id, order);
    this.render(order, before);
    if (before) this.announce(order, before);
    else if (this.fresh.delete(order.id)) this.announce(order, null);
    if (this.selected === order.id) this.onSelect?.(order);
    else if (this.selected === null) this.selectDefault();
    this.updateButtons();
  }

  /**
   * Until the user clicks a row, select the oldest order of the index (the one with
   * a chat going), once its state is in; any order after a moment without it.
   */
  selectDefault() {
    const first = Math.min(...this.index);
    if (this.orders.has(first)) {
      this.select(first);
    } else if (!this.defaultTimer) {
      this.defaultTimer = setTimeout(() => {
        if (this.selected === null && this.orders.size) this.select(Math.min(...this.orders.keys()));
      }, 1500);
    }
  }

  announce(order, before) {
    const c = order.change || {};
    const who = roleOf(order.updated_by);
    const by = `from ${who.name}'s window`;
    let title = `Order #${order.id}`;
    let text = '';
    let kind = 'info';
    if (c.field === 'created' || !before) {
      title = `New order #${order.id}`;
      text = `${order.title} · ${money(order.price)}`;
      kind = 'success';
    } else if (c.field === 'status') {
      title = `Order #${order.id} · ${STATUS_LABEL[order.status]}`;
      text = `Status ${STATUS_LABEL[c.from]} → ${STATUS_LABEL[c.to]} (${by})`;
      kind = order.status === 'completed' ? 'success' : 'info';
    } else if (c.field === 'progress') {
      title = `Order #${order.id} · ${order.progress}%`;
      text = `Progress ${c.from}% → ${c.to}% (${by})`;
    } else if (c.field === 'price') {
      title = `Order #${order.id} · ${money(order.price)}`;
      text = `Price ${money(c.from)} → ${money(c.to)} (${by})`;
      kind = 'warning';
    }
    toast(title, text, kind);
  }

  // ----------------------------------------------------------- render ----

  render(order, before) {
    $('orders-empty').hidden = true;
    let row = this.rows.get(order.id);
    if (!row) {
      row = el('tr', { testid: `order-row-${order.id}`, dataset: { id: order.id }, onclick: () => this.select(order.id) });
      this.rows.set(order.id, row);
      const body = $('orders-body');
      const after = [...body.children].find((r) => Number(r.dataset.id) < order.id);
      body.insertBefore(row, after || null);
    }
    const unread = this.chatUnread.get(conversationOf(order.id)) || 0;
    row.replaceChildren(
      el('td', {},
        el('div', {}, el('span.order-id', { text: `#${order.id}` }), ' ', el('span.order-title', { text: order.title }),
          unread ? el('span.chat-pill', { testid: `order-chat-unread-${order.id}`, title: 'Unread chat messages', text: `💬 ${unread}` }) : null),
        el('div.order-sub', { text: `${order.game} · ${roleOf(order.customer).name} → ${roleOf(order.booster).name}` })),
      el('td', {}, el(`span.pill.pill-${order.status}`, { testid: `order-status-${order.id}`, dataset: { status: order.status }, text: STATUS_LABEL[order.status] })),
      el('td', {}, el('div.progress', {},
        el('div.progress-track', {}, el('div.progress-fill', { style: `width:${before ? before.progress : order.progress}%` })),
        el('span.progress-num', { testid: `order-progress-${order.id}`, text: `${order.progress}%` }))),
      el('td.num', { testid: `order-price-${order.id}`, text: money(order.price) }),
      el('td', {}, el('span.updated', { dataset: { ago: order.updated_at }, text: ago(order.updated_at) })),
    );
    row.dataset.rev = String(order.rev);
    row.classList.toggle('selected', this.selected === order.id);
    // Animate the bar from its old width to the new one.
    const fill = row.querySelector('.progress-fill');
    requestAnimationFrame(() => { fill.style.width = `${order.progress}%`; });
    if (before) flash(row);
  }

  select(id) {
    if (!this.orders.has(id)) return;
    this.selected = id;
    for (const [rid, row] of this.rows) row.classList.toggle('selected', rid === id);
    this.updateButtons();
    this.onSelect?.(this.orders.get(id));
  }

  setChatUnread(conversation, unread) {
    this.chatUnread.set(conversation, unread);
    const id = Number(String(conversation).replace(/^order-/, ''));
    const order = this.orders.get(id);
    if (order) this.render(order, null);
  }

  updateButtons() {
    const order = this.orders.get(this.selected);
    $('order-selected-label').textContent = order ? `Selected: #${order.id}` : 'Selected: –';
    $('order-status').disabled = !order || order.status === 'completed';
    $('order-progress').disabled = !order || order.progress >= 100;
    $('order-price').disabled = !order;
  }

  // ---------------------------------------------------------- backend ----
  // What your backend does after it saved an order: publish the whole state.

  async publishOrder(order, change) {
    const next = {
      ...order,
      rev: (order.rev || 0) + 1,
      updated_at: Date.now(),
      updated_by: this.me.user,
      change,
    };
    await backend('publish', { channel: `orders:${order.id}`, data: next });
    this.sent.set(order.id, next);
    return next;
  }

  /**
   * The state the next change builds on: the newest of what arrived and what this
   * window published, so two quick clicks make two steps even before the first
   * publication is back.
   */
  current(id) {
    const got = this.orders.get(id);
    const sent = this.sent.get(id);
    return sent && (!got || sent.rev > got.rev) ? sent : got;
  }

  async create() {
    const known = [...this.index, ...this.orders.keys(), ...this.sentIndex];
    const id = Math.max(1040, ...known) + 1;
    const item = pick(CATALOG);
    const order = {
      id, title: item.title, game: item.game, price: item.price, status: 'pending', progress: 0,
      customer: ROLES.customer.user, booster: ROLES.booster.user, rev: 0,
    };
    await backend('chat_create', {
      conversation: conversationOf(id), title: `Order #${id}`, members: MEMBERS, data: { order: id },
    });
    await this.publishOrder(order, { field: 'created' });
    const orders = [...new Set([...this.index, ...this.sentIndex, id])].sort((a, b) => a - b);
    await backend('publish', { channel: 'orders:index', data: { type: 'index', orders } });
    this.sentIndex = orders;
  }

  async advanceStatus() {
    const order = this.current(this.selected);
    if (!order || order.status === 'completed') return;
    const to = STATUSES[STATUSES.indexOf(order.status) + 1];
    const next = { ...order, status: to, progress: to === 'completed' ? 100 : order.progress };
    await this.publishOrder(next, { field: 'status', from: order.status, to });
    // A real backend often does more on a status change: a line in the order's chat
    // and a notification for the customer (their bell, in every tab).
    await backend('chat_post', { conversation: conversationOf(order.id), kind: 'system', text: `Status: ${STATUS_LABEL[to]}` });
    await backend('notify', {
      users: [order.customer],
      title: `Order #${order.id} is ${STATUS_LABEL[to].toLowerCase()}`,
      message: order.title,
      level: to === 'completed' ? 'success' : 'info',
      category: 'orders',
      data: { order: order.id, status: to },
    });
  }

  async addProgress() {
    const order = this.current(this.selected);
    if (!order || order.progress >= 100) return;
    const progress = Math.min(100, order.progress + 10);
    const status = progress === 100 ? 'completed' : (order.status === 'pending' || order.status === 'paid') ? 'in_progress' : order.status;
    await this.publishOrder({ ...order, progress, status }, { field: 'progress', from: order.progress, to: progress });
  }

  async changePrice() {
    const order = this.current(this.selected);
    if (!order) return;
    let price = order.price + pick([-10, -5, 5, 10, 15, 20]);
    if (price < 10) price = order.price + 10;
    await this.publishOrder({ ...order, price }, { field: 'price', from: order.price, to: price });
  }

  /**
   * The first window on a fresh server seeds three orders (and a short chat on the
   * first). Idempotency keys make a second window seeding at the same time a no-op.
   */
  async checkSeed() {
    if (this.seeding) return this.seeding;
    this.seeding = (async () => {
      const { publications } = await this.indexSub.history({ limit: 1, reverse: true });
      if (publications.length) {
        this.onIndex(publications[0].data);
        return;
      }
      const now = Date.now();
      for (const seed of SEED) {
        const conversation = conversationOf(seed.id);
        await backend('chat_create', { conversation, title: `Order #${seed.id}`, members: MEMBERS, data: { order: seed.id } });
        if (seed.id === SEED[0].id) {
          const { messages } = await backend('chat_history', { conversation, limit: 1 });
          if (!messages.length) {
            for (const m of SEED_CHAT) await backend('chat_post', { conversation, ...m });
          }
        }
        const order = {
          ...seed, customer: ROLES.customer.user, booster: ROLES.booster.user,
          rev: 1, updated_at: now - (SEED.length - SEED.indexOf(seed)) * 60000, updated_by: 'seed', change: { field: 'seed' },
        };
        await backend('publish', { channel: `orders:${seed.id}`, data: order, idempotency_key: `seed-${seed.id}` });
      }
      await backend('publish', {
        channel: 'orders:index', data: { type: 'index', orders: SEED.map((s) => s.id) }, idempotency_key: 'seed-index',
      });
    })().catch((e) => {
      toast('Could not load the orders', String(e.message || e), 'error');
    }).finally(() => {
      this.seeding = null;
    });
    return this.seeding;
  }
}
