// Herald live demo: boots one window as a customer, a booster or an admin.
//
// The page gets a connection token from POST /demo/session (your backend would mint
// it with the same HMAC secret), opens one WebSocket with the published `centrifuge`
// SDK (global `Centrifuge`) and hands that client to each panel. Panels use the SDK
// directly (orders, dashboard) or through our `herald-client` helpers (global
// `HeraldClient`: Inbox for the bell, Chat for the order chat, Status for online dots).
import { ROLES, $, el, toast, tickAgo } from './ui.js';
import { initLog } from './backend.js';
import { OrdersBoard } from './orders.js';
import { Dashboard } from './dashboard.js';
import { Bell } from './bell.js';
import { OrderChat } from './chat.js';

const me = ROLES[new URLSearchParams(location.search).get('as')];
if (me) {
  start(me).catch((e) => {
    console.error(e);
    toast('The demo could not start', String(e.message || e), 'error');
    setConn('disconnected', 'Offline', String(e.message || e));
  });
} else {
  $('picker').hidden = false;
}

/** POST /demo/session: a connection token for `user` and the WebSocket URL. */
async function session(user) {
  const res = await fetch('/demo/session', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ user }),
  });
  if (!res.ok) throw new Error(`POST /demo/session answered ${res.status}`);
  return res.json();
}

async function start(me) {
  $('app').hidden = false;
  document.title = `${me.name} (${me.label.toLowerCase()}) · Herald live demo`;
  document.body.dataset.role = me.role;
  const av = $('me-avatar');
  av.textContent = me.initial;
  av.classList.add(`avatar-${me.role}`);
  $('me-name').textContent = me.name;
  $('me-role').textContent = `· ${me.label}`;
  for (const other of Object.values(ROLES)) {
    if (other.role === me.role) continue;
    $('open-as').append(el('a', {
      href: `/?as=${other.role}`, target: '_blank', rel: 'noopener', text: `Open as ${other.label.toLowerCase()} ↗`,
      title: `A second window playing ${other.name}, the ${other.label.toLowerCase()}`,
    }));
  }
  initLog();

  const first = await session(me.user);
  // WebSocket first; behind a proxy that blocks it, HTTP streaming, then SSE
  // (docs/transports.md). Same origin, so their commands go to '/emulation'.
  const centrifuge = new Centrifuge([
    { transport: 'websocket', endpoint: first.ws_url },
    { transport: 'http_stream', endpoint: '/connection/http_stream' },
    { transport: 'sse', endpoint: '/connection/sse' },
  ], {
    token: first.token,
    // Called by the SDK when the token expired (error 109) or was dropped (below).
    getToken: async () => (await session(me.user)).token,
    minReconnectDelay: 250,
    maxReconnectDelay: 2000,
  });
  const conn = new Connection(centrifuge);

  let orders = null;
  const chat = new OrderChat({ centrifuge, me, onUnread: (conv, n) => orders?.setChatUnread(conv, n) });
  orders = new OrdersBoard({ centrifuge, me, conn, onSelect: (order) => chat.open(order) });
  const dashboard = new Dashboard({ centrifuge, me, conn });
  // The bell's Inbox also hears the per-conversation unread counts (chat_unread).
  const bell = new Bell({ centrifuge, me, onChatUnread: ({ conversation, unread }) => orders.setChatUnread(conversation, unread) });

  followNews(centrifuge, conn);

  centrifuge.connect();
  setInterval(tickAgo, 5000);
  // Handy in the browser console: demo.centrifuge, demo.chat.conv, ...
  window.demo = { centrifuge, me, conn, orders, dashboard, bell, chat };
}

/**
 * The `news` channel: whatever is published there shows as a banner and a toast.
 * Try the curl command `herald serve` prints, or the admin page's publish form.
 */
function followNews(centrifuge, conn) {
  const sub = centrifuge.newSubscription('news');
  conn.watch(sub);
  let last = 0;
  sub.on('publication', (ctx) => {
    const data = ctx.data;
    const text = typeof data === 'string' ? data
      : data && typeof data.text === 'string' ? data.text : JSON.stringify(data);
    if (ctx.offset && ctx.offset <= last) return;
    last = ctx.offset || last;
    $('news-text').textContent = text;
    $('news-meta').textContent = `on channel news · ${new Date().toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' })}`;
    $('news').hidden = false;
    toast('News', text, 'info');
  });
  $('news-close').addEventListener('click', () => { $('news').hidden = true; });
  sub.subscribe();
}

function setConn(state, label, title = '') {
  const node = $('conn');
  node.dataset.state = state;
  node.title = title || `Connected over ${node.dataset.transport || 'WebSocket'}`;
  $('conn-label').textContent = label;
}

/**
 * The connection indicator. Follows the SDK's client events: `connecting` after a
 * drop means reconnecting; `connected` after a drop, or a subscription reporting
 * `wasRecovering && recovered`, means recovered (missed publications were replayed).
 */
class Connection {
  constructor(centrifuge) {
    this.centrifuge = centrifuge;
    this.everConnected = false;
    this.dropped = false;
    this.hadDrop = false;
    this.recovering = false;
    this.recoveredChannels = new Set();
    this.recoveries = 0;
    this.tokenRetries = 0;
    setConn('connecting', 'Connecting…');
    centrifuge.on('connecting', (ctx) => {
      if (this.everConnected) {
        this.dropped = true;
        this.hadDrop = true;
        setConn('reconnecting', 'Reconnecting…', `${ctx.reason} (code ${ctx.code})`);
      } else {
        setConn('connecting', 'Connecting…');
      }
    });
    centrifuge.on('connected', (ctx) => {
      $('conn').dataset.transport = ctx.transport;
      this.tokenRetries = 0;
      if (this.dropped) {
        this.dropped = false;
        this.markRecovered();
        clearTimeout(this.toastTimer);
        // Subscriptions report their recovery right after `connected`: summarise once.
        this.toastTimer = setTimeout(() => {
          const n = this.recoveredChannels.size;
          toast('Back online', n
            ? `Reconnected; ${n} channel${n === 1 ? '' : 's'} recovered what was missed.`
            : 'Reconnected; every panel reloaded its state.', 'success');
        }, 600);
      } else {
        setConn('connected', 'Live');
      }
      this.everConnected = true;
    });
    centrifuge.on('disconnected', (ctx) => {
      setConn('disconnected', 'Offline', `${ctx.reason} (code ${ctx.code})`);
      // 3500 "invalid token": with dev defaults a restarted server has a new HMAC
      // secret, so the token it gave before no longer verifies. Get a fresh one.
      if ((ctx.code === 3500 || ctx.code === 1) && this.tokenRetries < 20) {
        this.tokenRetries += 1;
        this.dropped = this.everConnected;
        this.hadDrop = this.hadDrop || this.everConnected;
        setConn('reconnecting', 'Reconnecting…', 'fetching a new token');
        setTimeout(() => {
          centrifuge.setToken('');
          centrifuge.connect();
        }, Math.min(250 * this.tokenRetries, 3000));
      }
    });
  }

  /** Follows a subscription's `subscribed` events for the recovery flags. */
  watch(sub) {
    sub.on('subscribed', (ctx) => {
      // A first subscribe in cache mode may also carry a publication: only a
      // subscribe after a drop counts as a recovery.
      if (this.hadDrop && ctx.wasRecovering && ctx.recovered) {
        this.recoveredChannels.add(sub.channel);
        this.markRecovered();
      }
    });
  }

  markRecovered() {
    this.recoveries += 1;
    $('conn').dataset.recoveries = String(this.recoveries);
    setConn('recovered', 'Recovered', 'Reconnected after a drop; missed publications were recovered');
  }
}
