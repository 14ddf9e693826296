// The Keys view: the listing as a tree (folders at `/`, opened a page at a
// time), and one key: its value as text, JSON or hex, its version and
// time to live; edit, delete and create with preconditions, so nothing is
// overwritten unseen. A key is its bytes throughout (shown as hex when it
// is not UTF-8), so keys written over RESP open and change here too.

import { call, getJson, keyPath, percentEncode, percentDecode } from './api.js';
import {
  el, replace, fromBase64, toBase64, keyLabel, describeValue, utf8Text, hexPairs, parseHex,
  bytes as showBytes, duration, count, time, toast,
} from './dom.js';

const PAGE = 200;
const encoder = new TextEncoder();
const DELIMITER = toBase64(encoder.encode('/'));

/** Folders (base64 prefixes) the user opened: kept open across reloads of the tree. */
const expanded = new Set();
let rootPrefix = '';
/** What the detail pane shows, to stop its countdown when it changes. */
let ttlTimer = null;

export function init() {
  const search = document.getElementById('key-search');
  let debounce;
  search.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      rootPrefix = search.value;
      reloadTree();
    }, 250);
  });
  document.getElementById('new-key').addEventListener('click', () => showCreate(rootPrefix));
}

let loaded = false;

/** Shows the view: loads the tree the first time. */
export function show() {
  if (!loaded) {
    loaded = true;
    reloadTree();
    const wanted = location.hash.match(/^#\/keys\/(.+)$/);
    if (wanted) openKey(percentDecode(wanted[1]));
  }
}

/** The prefix the Live view starts from. */
export function currentPrefix() {
  return rootPrefix;
}

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i += 1) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

/** One page of keys and folders under `prefix` (bytes), after `after` (base64). */
async function listPage(prefix, after) {
  let url = `/kv?encoding=base64&delimiter=${encodeURIComponent(DELIMITER)}&limit=${PAGE}`
    + `&prefix=${encodeURIComponent(toBase64(prefix))}`;
  if (after) url += `&start_after=${encodeURIComponent(after)}`;
  const page = await getJson(url);
  const items = [
    ...page.keys.map((k) => ({ folder: false, bytes: fromBase64(k) })),
    ...(page.prefixes || []).map((p) => ({ folder: true, bytes: fromBase64(p), b64: p })),
  ].sort((a, b) => compareBytes(a.bytes, b.bytes));
  return { items, next: page.next_start_after, keys: page.keys.length, folders: (page.prefixes || []).length };
}

/** Reloads the whole tree under the search prefix, reopening open folders. */
export async function reloadTree() {
  const tree = document.getElementById('tree');
  const counts = document.getElementById('key-counts');
  const prefix = encoder.encode(rootPrefix);
  try {
    const stats = getJson('/stats').catch(() => null);
    const shown = { keys: 0, folders: 0 };
    const more = await fillFolder(tree, prefix, null, shown);
    const total = (await stats)?.keys;
    replace(counts, [
      `${count(shown.keys)} keys and ${count(shown.folders)} folders shown`,
      rootPrefix ? ` under “${rootPrefix}”` : '',
      more ? ', more follow' : '',
      total !== undefined ? ` · ${count(total)} keys in the store` : '',
    ].join(''));
    // When the tree first shows: the page's load time, as the browser
    // tests measure it (docs/BENCHMARKS.md).
    if (performance.getEntriesByName('bitcask:keys-ready').length === 0) performance.mark('bitcask:keys-ready');
  } catch (e) {
    replace(tree, el('li', { class: 'error', text: `Could not list keys: ${e.message}` }));
  }
}

/**
 * Lists a page of `prefix` into `list` (after `after`), with a "more"
 * button while pages follow. Answers whether more follow.
 */
async function fillFolder(list, prefix, after, shown) {
  const page = await listPage(prefix, after);
  if (!after) replace(list);
  list.querySelector(':scope > li.more')?.remove();
  if (!after && page.items.length === 0) {
    list.append(el('li', { class: 'muted', text: 'No keys here.' }));
  }
  for (const item of page.items) {
    const rest = item.bytes.subarray(prefix.length);
    list.append(item.folder ? folderNode(item, rest) : keyNode(item.bytes, rest));
  }
  if (shown) {
    shown.keys += page.keys;
    shown.folders += page.folders;
  }
  if (page.next) {
    const li = el('li', { class: 'more' });
    li.append(el('button', {
      type: 'button',
      class: 'link',
      text: `More (after ${keyLabel(fromBase64(page.next)).text})`,
      onclick: () => fillFolder(list, prefix, page.next, null).catch((e) => toast(e.message, 'error')),
    }));
    list.append(li);
  }
  return Boolean(page.next);
}

function keyNode(bytes, rest) {
  const label = keyLabel(rest);
  const full = keyLabel(bytes);
  return el('li', { role: 'treeitem', class: 'key' },
    el('button', {
      type: 'button',
      class: label.binary ? 'key-name binary' : 'key-name',
      title: full.text,
      'data-key': full.text,
      onclick: () => openKey(bytes),
    }, label.text || '(empty)'));
}

function folderNode(item, rest) {
  const label = keyLabel(rest);
  const children = el('ul', { role: 'group' });
  const li = el('li', { role: 'treeitem', class: 'folder', 'aria-expanded': 'false' });
  const toggle = el('button', {
    type: 'button',
    class: label.binary ? 'folder-name binary' : 'folder-name',
    title: keyLabel(item.bytes).text,
    'data-folder': keyLabel(item.bytes).text,
    onclick: () => {
      const open = li.getAttribute('aria-expanded') !== 'true';
      setOpen(open);
    },
  }, label.text);
  const setOpen = (open) => {
    li.setAttribute('aria-expanded', String(open));
    if (open) {
      expanded.add(item.b64);
      li.append(children);
      replace(children, el('li', { class: 'muted', text: 'Loading…' }));
      fillFolder(children, item.bytes, null, null).catch((e) => {
        replace(children, el('li', { class: 'error', text: e.message }));
      });
    } else {
      expanded.delete(item.b64);
      children.remove();
    }
  };
  li.append(toggle);
  if (expanded.has(item.b64)) setOpen(true);
  return li;
}

function stopCountdown() {
  clearInterval(ttlTimer);
  ttlTimer = null;
}

/** Reads a key: its bytes, version, expiry; null if absent. */
async function readKey(bytes) {
  const response = await call('GET', keyPath(bytes), {
    extra: { Accept: 'application/octet-stream' },
    allow: [404],
  });
  if (response.status === 404) return null;
  const expires = response.headers.get('X-Bitcask-Expires-At');
  return {
    etag: response.headers.get('ETag'),
    version: (response.headers.get('ETag') || '').replaceAll('"', ''),
    expiresAt: expires ? Number(expires) : null,
    value: new Uint8Array(await response.arrayBuffer()),
  };
}

/** Opens the key `bytes` in the detail pane. */
export async function openKey(bytes) {
  stopCountdown();
  const pane = document.getElementById('key-detail');
  const label = keyLabel(bytes);
  const key = label.text;
  const title = () => el('h2', { class: label.binary ? 'key-title binary' : 'key-title', text: key });
  history.replaceState(null, '', `#/keys/${percentEncode(bytes)}`);
  replace(pane, el('p', { class: 'muted', text: 'Loading…' }));
  let found;
  try {
    found = await readKey(bytes);
  } catch (e) {
    replace(pane, el('p', { class: 'error', text: `Could not read “${key}”: ${e.message}` }));
    return;
  }
  if (!found) {
    replace(pane,
      title(),
      el('p', { class: 'muted', text: 'This key is absent (deleted or expired).' }),
      !label.binary && el('button', { type: 'button', text: 'Create it', onclick: () => showCreate(key) }));
    return;
  }
  const shown = describeValue(found.value);
  const ttl = el('dd', { 'data-field': 'ttl' });
  const meta = el('dl', { class: 'meta' },
    el('dt', { text: 'Version' }), el('dd', { 'data-field': 'version', text: found.version }),
    el('dt', { text: 'Size' }), el('dd', { text: showBytes(found.value.length) }),
    el('dt', { text: 'Shown as' }), el('dd', { 'data-field': 'encoding', text: shown.kind === 'hex' ? 'hex (not UTF-8)' : shown.kind === 'json' ? 'JSON (formatted)' : 'UTF-8 text' }),
    el('dt', { text: 'Expires' }), ttl);
  const tick = () => {
    if (found.expiresAt === null) {
      ttl.textContent = 'never';
      return;
    }
    const left = found.expiresAt - Date.now();
    ttl.textContent = left > 0 ? `in ${duration(left)} (${time(found.expiresAt)})` : 'expired';
    if (left <= 0) stopCountdown();
  };
  tick();
  if (found.expiresAt !== null) ttlTimer = setInterval(tick, 1000);
  const actions = el('div', { class: 'actions' },
    el('button', { type: 'button', text: 'Edit', onclick: () => showEdit(bytes, found) }),
    el('button', { type: 'button', class: 'danger', text: 'Delete', onclick: () => confirmDelete(bytes, found, actions) }),
    el('button', { type: 'button', class: 'link', text: 'Reload', onclick: () => openKey(bytes) }));
  replace(pane,
    title(),
    label.binary && el('p', { class: 'muted', text: 'This key is not UTF-8: shown as hex bytes.' }),
    meta,
    actions,
    el('pre', { class: `value ${shown.kind}`, 'data-field': 'value', text: shown.text }));
}

function confirmDelete(bytes, found, actions) {
  const key = keyLabel(bytes).text;
  const bar = el('div', { class: 'confirm', role: 'alertdialog' },
    el('span', { text: `Delete “${key}”? This cannot be undone.` }),
    el('button', {
      type: 'button',
      class: 'danger',
      text: 'Delete for good',
      onclick: async () => {
        try {
          await call('DELETE', keyPath(bytes), { extra: { 'If-Match': found.etag } });
          toast(`Deleted “${key}”.`);
          replace(document.getElementById('key-detail'), el('p', { class: 'muted', text: `“${key}” was deleted.` }));
          reloadTree();
        } catch (e) {
          if (e.status === 412) {
            toast(`“${key}” changed meanwhile: not deleted. Here is what it holds now.`, 'error');
            openKey(bytes);
          } else toast(e.message, 'error');
        }
      },
    }),
    el('button', { type: 'button', text: 'Cancel', onclick: () => bar.remove() }));
  actions.after(bar);
}

/** The value of an editor: bytes, or an error message. */
function editorBytes(mode, text) {
  if (mode === 'hex') {
    const parsed = parseHex(text);
    return parsed === null ? { error: 'Not hex: pairs of 0-9 a-f, spaces allowed.' } : { bytes: parsed };
  }
  return { bytes: encoder.encode(text) };
}

/** The TTL field's seconds, null for none, or an error. */
function ttlSeconds(text) {
  if (text.trim() === '') return { seconds: null };
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) return { error: 'TTL is a whole number of seconds, 1 or more (empty: never expires).' };
  return { seconds: n };
}

async function put(keyBytes, value, seconds, precondition) {
  const query = seconds === null ? '' : `?ttl=${seconds}`;
  return call('PUT', keyPath(keyBytes) + query, {
    body: value,
    extra: { 'Content-Type': 'application/octet-stream', ...precondition },
  });
}

function showEdit(bytes, found) {
  stopCountdown();
  const label = keyLabel(bytes);
  const key = label.text;
  const text = utf8Text(found.value);
  const mode = text === null ? 'hex' : 'text';
  const editor = el('textarea', { class: 'editor', 'data-field': 'editor', rows: 14, spellcheck: 'false' });
  editor.value = mode === 'hex' ? hexPairs(found.value) : text;
  const ttl = el('input', { type: 'text', inputmode: 'numeric', 'data-field': 'ttl-input', placeholder: 'never' });
  if (found.expiresAt !== null) ttl.value = String(Math.max(1, Math.ceil((found.expiresAt - Date.now()) / 1000)));
  const error = el('p', { class: 'error', role: 'alert' });
  const pane = document.getElementById('key-detail');
  const save = async () => {
    const value = editorBytes(mode, editor.value);
    const life = ttlSeconds(ttl.value);
    if (value.error || life.error) {
      error.textContent = value.error || life.error;
      return;
    }
    try {
      await put(bytes, value.bytes, life.seconds, { 'If-Match': found.etag });
      toast(`Saved “${key}”.`);
      openKey(bytes);
    } catch (e) {
      if (e.status === 412) showConflict(bytes, value.bytes, life.seconds);
      else error.textContent = e.message;
    }
  };
  replace(pane,
    el('h2', { class: label.binary ? 'key-title binary' : 'key-title', text: key }),
    el('p', { class: 'muted', text: `Editing version ${found.version} as ${mode === 'hex' ? 'hex bytes' : 'UTF-8 text'}. Saving checks that nobody changed it meanwhile.` }),
    editor,
    el('label', {}, 'TTL in seconds ', ttl),
    error,
    el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'primary', text: 'Save', onclick: save }),
      el('button', { type: 'button', text: 'Cancel', onclick: () => openKey(bytes) })));
  editor.focus();
}

/** A save refused because the key moved on: both versions side by side. */
async function showConflict(bytes, mine, seconds) {
  const pane = document.getElementById('key-detail');
  const label = keyLabel(bytes);
  const key = label.text;
  let theirs;
  try {
    theirs = await readKey(bytes);
  } catch (e) {
    toast(e.message, 'error');
    return;
  }
  const column = (title, bytes) => el('div', { class: 'side' },
    el('h3', { text: title }),
    el('pre', { class: 'value', text: bytes === null ? '(deleted)' : describeValue(bytes).text }));
  const overwrite = async () => {
    try {
      await put(bytes, mine, seconds, theirs ? { 'If-Match': theirs.etag } : { 'If-None-Match': '*' });
      toast(`Saved “${key}” over the other change.`);
      openKey(bytes);
    } catch (e) {
      if (e.status === 412) showConflict(bytes, mine, seconds);
      else toast(e.message, 'error');
    }
  };
  replace(pane,
    el('h2', { class: label.binary ? 'key-title binary' : 'key-title', text: key }),
    el('div', { class: 'conflict', role: 'alert', 'data-field': 'conflict' },
      el('strong', { text: 'Changed meanwhile. ' }),
      theirs
        ? `Someone saved version ${theirs.version} after you started editing. Nothing was overwritten.`
        : 'Someone deleted this key after you started editing. Nothing was written.'),
    el('div', { class: 'sides' },
      column('Your edit (not saved)', mine),
      column(theirs ? `On the server now (version ${theirs.version})` : 'On the server now', theirs ? theirs.value : null)),
    el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'danger', text: theirs ? 'Overwrite with mine' : 'Create with mine', onclick: overwrite }),
      el('button', { type: 'button', text: 'Keep theirs', onclick: () => openKey(bytes) })));
}

/** The form that makes a new key (refused if it exists). */
export function showCreate(prefill = '') {
  stopCountdown();
  const pane = document.getElementById('key-detail');
  const name = el('input', { type: 'text', 'data-field': 'new-key', placeholder: 'users/42', required: true });
  name.value = prefill;
  const value = el('textarea', { class: 'editor', 'data-field': 'new-value', rows: 10, spellcheck: 'false' });
  const ttl = el('input', { type: 'text', inputmode: 'numeric', 'data-field': 'new-ttl', placeholder: 'never' });
  const error = el('p', { class: 'error', role: 'alert' });
  const create = async () => {
    const key = name.value;
    const life = ttlSeconds(ttl.value);
    if (key === '') error.textContent = 'A key is needed.';
    else if (life.error) error.textContent = life.error;
    else {
      try {
        await put(encoder.encode(key), encoder.encode(value.value), life.seconds, { 'If-None-Match': '*' });
        toast(`Created “${key}”.`);
        reloadTree();
        openKey(encoder.encode(key));
      } catch (e) {
        error.textContent = e.status === 412 ? `“${key}” exists already: open it to edit it.` : e.message;
      }
    }
  };
  replace(pane,
    el('h2', { text: 'New key' }),
    el('label', {}, 'Key ', name),
    el('label', {}, 'Value (UTF-8 text)', value),
    el('label', {}, 'TTL in seconds ', ttl),
    error,
    el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'primary', text: 'Create', onclick: create }),
      el('button', { type: 'button', text: 'Cancel', onclick: () => replace(pane) })));
  name.focus();
}
