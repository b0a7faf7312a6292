// Small DOM helpers shared by the demo's panels: element builder, toasts, formatting.

/** The three roles a window can play, and the user id each connects as. */
export const ROLES = {
  customer: { role: 'customer', user: 'customer-1', name: 'Alex', label: 'Customer', initial: 'A' },
  booster: { role: 'booster', user: 'booster-1', name: 'Sam', label: 'Booster', initial: 'S' },
  admin: { role: 'admin', user: 'admin-1', name: 'Jordan', label: 'Admin', initial: 'J' },
};

/** The role of a user id, or a stand-in for any other user. */
export function roleOf(user) {
  for (const r of Object.values(ROLES)) if (r.user === user) return r;
  return { role: 'other', user, name: user || 'System', label: '', initial: (user || '?')[0].toUpperCase() };
}

/** `el('div.card', {dataset: {x: 1}, onclick}, child, 'text')`: a tiny hyperscript. */
export function el(spec, props = {}, ...children) {
  const [tag, ...classes] = spec.split('.');
  const node = document.createElement(tag || 'div');
  if (classes.length) node.className = classes.join(' ');
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'testid') node.dataset.testid = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'text') node.textContent = value;
    else if (key in node && key !== 'style') node[key] = value;
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (id) => document.getElementById(id);

/** An avatar circle for a user. */
export function avatar(user) {
  const r = roleOf(user);
  return el(`span.avatar.avatar-${r.role}`, { title: `${r.name}${r.label ? ` (${r.label.toLowerCase()})` : ''}` }, r.initial);
}

/** Shows a toast for a few seconds. kind: info | success | warning | error. */
export function toast(title, text = '', kind = 'info') {
  const box = $('toasts');
  const node = el('div.toast', { testid: 'toast', dataset: { kind } }, el('div', {}, el('strong', { text: title }), text ? el('span', { text }) : null));
  box.append(node);
  while (box.children.length > 4) box.firstElementChild.remove();
  setTimeout(() => {
    node.classList.add('out');
    node.addEventListener('animationend', () => node.remove(), { once: true });
  }, 5000);
}

/** Restarts a CSS animation class on a node (the yellow highlight of a change). */
export function flash(node, cls = 'flash') {
  node.classList.remove(cls);
  void node.offsetWidth; // reflow, so the animation runs again
  node.classList.add(cls);
}

export const money = (n) => `$${Number(n).toLocaleString('en-US', { maximumFractionDigits: 0 })}`;

export function clock(ms) {
  return new Date(ms).toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' });
}

/** "just now", "3 min ago", ... */
export function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 10) return 'just now';
  if (s < 60) return `${s} s ago`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min ago`;
  return clock(ms);
}

/** Refreshes every `[data-ago]` element's relative time. */
export function tickAgo() {
  for (const node of document.querySelectorAll('[data-ago]')) node.textContent = ago(Number(node.dataset.ago));
}

export const pick = (list) => list[Math.floor(Math.random() * list.length)];
