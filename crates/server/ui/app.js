// The console's entry: signs in when the server wants a token, switches
// between the views, and starts each view when it is first shown.

import { call, getJson, onUnauthorized, setToken, forgetToken, token } from './api.js';
import * as keys from './keys.js';
import * as space from './space.js';
import * as load from './load.js';
import * as live from './live.js';
import * as cluster from './cluster.js';

const VIEWS = {
  keys: { show: () => keys.show() },
  space: { show: () => space.show(), hide: () => space.hide() },
  load: { show: () => load.show(), hide: () => load.hide() },
  live: { show: () => live.show(keys.currentPrefix()), hide: () => live.hide() },
  cluster: { show: () => cluster.show(), hide: () => cluster.hide() },
};

let current = null;
let started = false;

function showOnly(id) {
  for (const section of document.querySelectorAll('main > section')) section.hidden = section.id !== id;
}

/** Switches to view `name` (and says so in the address). */
function open(name) {
  if (!VIEWS[name]) name = 'keys';
  if (current && current !== name) VIEWS[current].hide?.();
  current = name;
  showOnly(`view-${name}`);
  for (const b of document.querySelectorAll('#tabs button')) b.setAttribute('aria-selected', String(b.dataset.view === name));
  if (!location.hash.startsWith(`#/${name}`)) history.replaceState(null, '', `#/${name}`);
  VIEWS[name].show();
}

/** Shows the login form and nothing else. */
function login(message = '') {
  if (current) VIEWS[current].hide?.();
  current = null;
  load.stop();
  started = false;
  showOnly('login');
  document.getElementById('tabs').hidden = true;
  document.getElementById('logout').hidden = true;
  document.getElementById('login-error').textContent = message;
  document.getElementById('token').focus();
}

/** Starts the console once the server has let us in. */
function start() {
  document.getElementById('tabs').hidden = false;
  document.getElementById('logout').hidden = !token();
  if (!started) {
    started = true;
    load.init();
  }
  const wanted = location.hash.match(/^#\/([a-z]+)/);
  open(wanted ? wanted[1] : 'keys');
}

/** Whether the server lets this tab in (with its token, if any). */
async function admitted() {
  try {
    await call('GET', '/kv?limit=1');
    return true;
  } catch (e) {
    if (e.status === 401) return false;
    throw e;
  }
}

async function main() {
  onUnauthorized(() => login(token() ? 'The token was refused.' : ''));
  keys.init();
  space.init();
  live.init();
  for (const b of document.querySelectorAll('#tabs button')) b.addEventListener('click', () => open(b.dataset.view));
  document.getElementById('login-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    setToken(document.getElementById('token').value);
    document.getElementById('token').value = '';
    if (await admitted()) start();
    else {
      forgetToken();
      login('The token was refused.');
    }
  });
  document.getElementById('logout').addEventListener('click', () => {
    forgetToken();
    login('');
  });
  try {
    const health = await getJson('/health');
    document.getElementById('server-info').textContent = `${health.version ?? ''} · ${location.host}`;
  } catch {
    document.getElementById('server-info').textContent = location.host;
  }
  if (await admitted()) start();
  else login('');
}

main().catch((e) => {
  document.getElementById('server-info').textContent = `Could not reach the server: ${e.message}`;
});
