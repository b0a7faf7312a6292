// "Your backend": the demo calls POST /demo/backend/<method>, which answers exactly
// what Herald's server API (POST /api/<method> with the API key) answers. In a real
// app these calls come from your server, never from the browser.
import { $, el } from './ui.js';

const MAX_LOG = 40;

/** Calls the server API method through the demo's backend stand-in; answers `result`. */
export async function backend(method, params = {}) {
  const started = performance.now();
  let answer;
  try {
    const res = await fetch(`/demo/backend/${method}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(params),
    });
    answer = await res.json().catch(() => ({ error: { code: res.status, message: res.statusText } }));
  } catch (e) {
    answer = { error: { code: 0, message: String(e.message || e) } };
  }
  log(method, params, answer, performance.now() - started);
  if (answer.error) {
    const err = new Error(`${method}: ${answer.error.message} (${answer.error.code})`);
    err.code = answer.error.code;
    throw err;
  }
  return answer.result;
}

function summary(params) {
  const text = JSON.stringify(params);
  return text.length > 160 ? `${text.slice(0, 157)}…` : text;
}

function log(method, params, answer, ms) {
  const list = $('backend-log');
  if (!list) return;
  list.querySelector('.empty')?.remove();
  const ok = !answer.error;
  list.prepend(el('li', { dataset: { method } },
    el('span.verb', { text: 'POST' }),
    el('span.path', { text: `/api/${method}` }),
    el(`span.res${ok ? '' : '.err'}`, { text: ok ? `200 · ${Math.round(ms)} ms` : `error ${answer.error.code}` }),
    el('span.body', { text: summary(params), title: ok ? JSON.stringify(answer.result) : answer.error.message }),
  ));
  while (list.children.length > MAX_LOG) list.lastElementChild.remove();
}

export function initLog() {
  const list = $('backend-log');
  if (list && !list.children.length) list.append(el('li.empty', { text: 'No calls yet: press a Backend button.' }));
}
