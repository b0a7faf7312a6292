// Order chat on herald-client's Chat (docs/chat.md): one conversation per order,
// `order-<id>`, created by the backend (chat_create) with the three demo users as
// members. Messages are stored by Herald; the channel `chat:<conversation>` carries
// new messages, typing and read receipts live, and the helper fetches the newest
// page again after every (re)subscribe. Online dots come from herald-client's
// Status (`status:<user>` pushes), seeded with the server API's user_status.
import { $, el, toast, clock, avatar, roleOf, ROLES } from './ui.js';
import { backend } from './backend.js';

const MEMBERS = Object.values(ROLES).map((r) => r.user);
const PAGE = 20;

export class OrderChat {
  constructor({ centrifuge, me, onUnread }) {
    this.centrifuge = centrifuge;
    this.me = me;
    this.onUnread = onUnread;
    this.chat = new HeraldClient.Chat(centrifuge, { userId: me.user, syncLimit: PAGE });
    this.conv = null;
    this.order = null;
    this.reset();

    // Online dots for the three members.
    this.online = new Map(MEMBERS.map((u) => [u, u === me.user]));
    this.status = new HeraldClient.Status(centrifuge);
    this.status.on('change', ({ user, online }) => { this.online.set(user, online); this.renderMembers(); });
    for (const user of MEMBERS) if (user !== me.user) this.status.watch(user);
    centrifuge.on('connected', () => {
      // The current statuses once per (re)connect; the pushes follow transitions.
      backend('user_status', { users: MEMBERS }).then(({ statuses }) => {
        for (const s of statuses) this.online.set(s.user, s.user === me.user || s.online);
        this.renderMembers();
      }).catch(() => {});
      // Unread counts per conversation for the order rows; chat_unread pushes follow.
      this.chat.list({ limit: 50 }).then((list) => {
        for (const c of list) this.onUnread?.(c.id, c.unread);
      }).catch(() => {});
    });
    this.renderMembers();

    const input = $('chat-input');
    input.addEventListener('input', () => { void this.typingNow(); });
    $('chat-form').addEventListener('submit', (e) => {
      e.preventDefault();
      void this.send();
    });
    $('chat-load-older').addEventListener('click', () => { void this.loadOlder(); });
    document.addEventListener('visibilitychange', () => this.markRead());
  }

  reset() {
    this.messages = new Map();  // id -> message
    this.reads = new Map();     // user -> highest message id they read
    this.typing = new Set();
    this.hasMore = false;
    this.pagedBack = false;
    this.myRead = 0;
    this.retriedCreate = false;
    this.firstRender = true;
  }

  /** Shows the chat of `order`, subscribing to `chat:order-<id>`. */
  open(order) {
    const id = `order-${order.id}`;
    $('chat-title').textContent = `Order #${order.id} · chat`;
    if (this.conv && this.conv.id === id) return;
    this.order = order;
    if (this.conv) this.conv.unsubscribe();
    this.reset();
    $('chat-conv').textContent = id;
    $('chat-list').replaceChildren(el('div.empty.muted', { text: 'Loading messages…' }));
    this.renderTyping();
    const conv = this.chat.conversation(id);
    this.conv = conv;
    const mine = (fn) => (value) => { if (this.conv === conv) fn(value); };
    conv.on('synced', mine(({ messages, has_more }) => {
      for (const m of messages) this.messages.set(m.id, m);
      if (!this.pagedBack) this.hasMore = has_more;
      this.setEnabled(true);
      this.render(true);
      this.markRead();
    }));
    conv.on('message', mine((m) => {
      this.messages.set(m.id, m);
      this.render(true);
      if (m.user !== this.me.user) this.markRead();
    }));
    conv.on('typing', mine(({ user }) => { this.typing.add(user); this.renderTyping(); }));
    conv.on('typing_stopped', mine(({ user }) => { this.typing.delete(user); this.renderTyping(); }));
    conv.on('read', mine(({ user, message_id }) => {
      if (message_id > (this.reads.get(user) || 0)) this.reads.set(user, message_id);
      this.renderReceipt();
    }));
    conv.on('unsubscribed', mine(({ code, reason }) => {
      this.setEnabled(false);
      // Not a member, or no such conversation yet: the backend creates it (idempotent),
      // then subscribe again.
      if ((code === 102 || code === 103) && !this.retriedCreate) {
        this.retriedCreate = true;
        backend('chat_create', { conversation: id, title: `Order #${order.id}`, members: MEMBERS, data: { order: order.id } })
          .then(() => conv.subscribe())
          .catch((e) => toast('Chat unavailable', String(e.message || e), 'error'));
      } else if (code !== 0) {
        $('chat-list').replaceChildren(el('div.empty.muted', { text: `Chat unavailable: ${reason} (${code})` }));
      }
    }));
    conv.on('error', mine((e) => console.warn('chat', e)));
  }

  /**
   * Tells the others I am typing. The helper sends at most one `chat.typing` per
   * 2 s; a keystroke inside that window schedules one more at its end, so a
   * typing indicator keeps showing while I type and shows again soon after I sent.
   */
  async typingNow() {
    const input = $('chat-input');
    if (!this.conv || !input.value.trim()) return;
    const sent = await this.conv.typing().catch(() => true);
    if (!sent && !this.typingTimer) {
      this.typingTimer = setTimeout(() => {
        this.typingTimer = null;
        void this.typingNow();
      }, 2100);
    }
  }

  setEnabled(on) {
    $('chat-input').disabled = !on;
    $('chat-send').disabled = !on;
  }

  async send() {
    const input = $('chat-input');
    const text = input.value.trim();
    if (!text || !this.conv) return;
    input.value = '';
    try {
      const m = await this.conv.send(text);
      this.messages.set(m.id, m);
      this.render(true);
    } catch (e) {
      input.value = text;
      toast('Message not sent', String(e.message || e), 'error');
    }
  }

  async loadOlder() {
    if (!this.conv || !this.messages.size) return;
    const before = Math.min(...this.messages.keys());
    const box = $('chat-messages');
    const fromBottom = box.scrollHeight - box.scrollTop;
    try {
      const page = await this.conv.history({ before, limit: PAGE });
      for (const m of page.messages) this.messages.set(m.id, m);
      this.hasMore = page.has_more;
      this.pagedBack = true;
      this.render(false);
      box.scrollTop = box.scrollHeight - fromBottom; // keep the view where it was
    } catch (e) {
      toast('Could not load older messages', String(e.message || e), 'error');
    }
  }

  /** Moves my read mark to the newest message while this window is visible. */
  markRead() {
    if (!this.conv || document.visibilityState !== 'visible' || !this.messages.size) return;
    const last = Math.max(...this.messages.keys());
    if (last <= this.myRead) return;
    this.myRead = last;
    this.conv.read(last).catch(() => { this.myRead = 0; });
  }

  // ----------------------------------------------------------- render ----

  render(stickToBottom) {
    const box = $('chat-messages');
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    $('chat-load-older').hidden = !this.hasMore;
    const sorted = [...this.messages.values()].sort((a, b) => a.id - b.id);
    if (!sorted.length) {
      $('chat-list').replaceChildren(el('div.empty.muted', { text: 'No messages yet. Say hello!' }));
    } else {
      $('chat-list').replaceChildren(...sorted.map((m) => this.renderMessage(m)));
    }
    this.renderReceipt();
    if (stickToBottom && (nearBottom || sorted.at(-1)?.user === this.me.user || this.firstRender)) {
      box.scrollTop = box.scrollHeight;
    }
    this.firstRender = false;
  }

  renderMessage(m) {
    const base = { testid: 'chat-message', dataset: { id: m.id, user: m.user || '', kind: m.kind } };
    if (m.kind === 'system' || !m.user) {
      return el('div.msg.system', base, el('div.bubble', { text: m.text, title: clock(m.created_at) }));
    }
    const who = roleOf(m.user);
    const mine = m.user === this.me.user;
    return el(`div.msg${mine ? '.mine' : ''}`, base,
      mine ? null : avatar(m.user),
      el('div.msg-body', {},
        el('div.msg-meta', { text: mine ? clock(m.created_at) : `${who.name} · ${who.label.toLowerCase()} · ${clock(m.created_at)}` }),
        el('div.bubble', { text: m.text })));
  }

  /** "Seen by …" under my newest message: the members whose read mark reached it. */
  renderReceipt() {
    document.querySelector('[data-testid="read-receipt"]')?.remove();
    const mine = [...this.messages.values()].filter((m) => m.user === this.me.user && m.kind !== 'system');
    if (!mine.length) return;
    const last = mine.reduce((a, b) => (a.id > b.id ? a : b));
    const node = document.querySelector(`[data-testid="chat-message"][data-id="${last.id}"] .msg-body`);
    if (!node) return;
    const readers = [...this.reads].filter(([user, id]) => user !== this.me.user && id >= last.id).map(([user]) => roleOf(user).name);
    node.append(readers.length
      ? el('div.receipt', { testid: 'read-receipt', dataset: { readers: readers.join(',') }, text: `Seen by ${readers.join(', ')}` })
      : el('div.receipt.sent', { testid: 'read-receipt', dataset: { readers: '' }, text: 'Sent' }));
  }

  renderTyping() {
    const names = [...this.typing].map((u) => roleOf(u).name);
    $('chat-typing').hidden = names.length === 0;
    $('chat-typing').dataset.users = [...this.typing].join(',');
    $('chat-typing-text').textContent = names.length === 1 ? `${names[0]} is typing…` : `${names.join(' and ')} are typing…`;
  }

  renderMembers() {
    $('chat-members').replaceChildren(...MEMBERS.map((user) => {
      const r = roleOf(user);
      const online = !!this.online.get(user);
      return el('span.member', { testid: `member-${r.role}`, dataset: { online: String(online) }, title: online ? 'online' : 'offline' },
        avatar(user), el('span', {}, user === this.me.user ? `${r.name} (you)` : r.name, ' ', el('span.member-state', { text: online ? 'online' : 'offline' })));
    }));
  }
}
