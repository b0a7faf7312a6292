// Notification bell on herald-client's Inbox (docs/inbox.md): the unread badge follows
// the `unread_count` pushes on the user's personal channel `inbox:#<user>` (the same
// number in every tab, refetched after every reconnect), new notifications arrive as
// `notification` pushes, and the list, mark read and mark all read are rpc calls.
import { $, el, toast, ago, roleOf, ROLES } from './ui.js';
import { backend } from './backend.js';

const SAMPLES = [
  { title: 'Your booster is online', message: 'Sam started working on order #1041.', level: 'info' },
  { title: 'Payment received', message: '$45.00 for order #1042. Thank you!', level: 'success' },
  { title: 'Order #1041: 80% done', message: 'Two more wins to Platinum IV.', level: 'info' },
  { title: 'Action needed', message: 'Confirm the schedule for order #1043.', level: 'warning' },
  { title: 'New review', message: '★★★★★ "Fast and friendly, thanks!"', level: 'success' },
];

export class Bell {
  constructor({ centrifuge, me, onChatUnread }) {
    this.me = me;
    this.open = false;
    this.sent = 0;
    this.inbox = new HeraldClient.Inbox(centrifuge, me.user);
    this.inbox.on('unread_count', (n) => this.setCount(n));
    this.inbox.on('notification', (n) => {
      toast(n.title, n.message, n.level === 'error' ? 'error' : n.level);
      const bell = $('bell');
      bell.classList.remove('ring');
      void bell.offsetWidth;
      bell.classList.add('ring');
    });
    if (onChatUnread) this.inbox.on('chat_unread', onChatUnread);
    this.inbox.on('error', (e) => console.warn('inbox refresh failed', e));

    $('bell-user').textContent = `${me.name} (${me.user})`;
    $('bell').addEventListener('click', (e) => {
      e.stopPropagation();
      this.toggle(!this.open);
    });
    $('bell-dropdown').addEventListener('click', (e) => e.stopPropagation());
    document.addEventListener('click', () => this.toggle(false));
    document.addEventListener('keydown', (e) => { if (e.key === 'Escape') this.toggle(false); });
    $('bell-mark-all').addEventListener('click', () => {
      this.inbox.markRead('all').catch((e) => toast('Mark all read failed', e.message, 'error'));
    });
    for (const button of document.querySelectorAll('[data-notify]')) {
      button.addEventListener('click', () => {
        this.notify(ROLES[button.dataset.notify]).catch((e) => toast('Backend call failed', String(e.message || e), 'error'));
      });
    }
  }

  setCount(n) {
    const badge = $('bell-count');
    badge.textContent = n > 99 ? '99+' : String(n);
    badge.hidden = n === 0;
    $('bell').dataset.count = String(n);
    $('bell').title = `${n} unread notification${n === 1 ? '' : 's'}`;
    // Another tab (or the backend) changed what is read: keep an open list in step.
    if (this.open) void this.reload();
  }

  toggle(open) {
    if (open === this.open) return;
    this.open = open;
    $('bell-dropdown').hidden = !open;
    $('bell').setAttribute('aria-expanded', String(open));
    if (open) void this.reload();
  }

  async reload() {
    const seq = (this.seq = (this.seq || 0) + 1);
    try {
      const page = await this.inbox.list({ limit: 20 });
      if (seq !== this.seq) return;
      this.renderList(page.notifications);
    } catch (e) {
      toast('Could not load notifications', e.message, 'error');
    }
  }

  renderList(items) {
    const list = $('notif-list');
    if (!items.length) {
      list.replaceChildren(el('li.empty.muted', { text: 'No notifications yet. Press a Notify button in “Your backend”.' }));
      return;
    }
    list.replaceChildren(...items.map((n) => el('li.notif', {
      testid: 'notification-item',
      dataset: { id: n.id, read: String(n.read), level: n.level },
      title: n.read ? 'Read' : 'Click to mark read',
      onclick: () => { if (!n.read) this.inbox.markRead([n.id]).catch((e) => toast('Mark read failed', e.message, 'error')); },
    },
    el('span.lvl'),
    el('div', {}, el('div.notif-title', { text: n.title }), n.message ? el('div.notif-msg', { text: n.message }) : null),
    el('span.notif-time', { dataset: { ago: n.created_at }, text: ago(n.created_at) }))));
  }

  /** Your backend notifies a user: POST /api/notify. */
  async notify(target) {
    const sample = SAMPLES[this.sent++ % SAMPLES.length];
    const from = roleOf(this.me.user);
    await backend('notify', {
      users: [target.user],
      title: sample.title,
      message: sample.message,
      level: sample.level,
      category: 'demo',
      data: { from: from.user },
    });
  }
}
