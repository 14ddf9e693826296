// Building the page: elements from data, always as text (never parsed as
// HTML), and the formats the views share.

/**
 * A new element: `attrs` are set as attributes (`class`, `data-*`, ...),
 * except `text` (its text content) and `on*` functions (listeners);
 * `children` are nodes or strings (text nodes).
 */
export function el(tag, attrs = {}, ...children) {
  return build(document.createElement(tag), attrs, children);
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An SVG element, as `el`. */
export function svg(tag, attrs = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'text') node.textContent = String(value);
    else if (name.startsWith('on') && typeof value === 'function') {
      node.addEventListener(name.slice(2), value);
    } else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
  return node;
}

/** A headline number with its label (`data-field` names it for tests). */
export function total(label, value, field) {
  return el('div', { class: 'total', 'data-field': field },
    el('span', { class: 'value', text: value }),
    el('span', { class: 'label', text: label }));
}

/** Replaces a node's children. */
export function replace(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

/** `1.5 MiB`. */
export function bytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** `3 h 12 min`, `45 s`, `120 ms`. */
export function duration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  let s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  return [d && `${d} d`, h && `${h} h`, m && `${m} min`].filter(Boolean).join(' ');
}

/** `1,234,567`. */
export function count(n) {
  return Number(n).toLocaleString('en-US');
}

/** A local time from Unix milliseconds. */
export function time(ms) {
  return new Date(ms).toLocaleString();
}

/** The bytes of standard base64. */
export function fromBase64(text) {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i += 1) out[i] = raw.charCodeAt(i);
  return out;
}

/** Standard base64 of bytes. */
export function toBase64(bytes) {
  let raw = '';
  for (const b of bytes) raw += String.fromCharCode(b);
  return btoa(raw);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The text of UTF-8 bytes, or null if they are not UTF-8. */
export function utf8Text(bytes) {
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

/** Bytes as hex, 16 a line, with an offset. */
export function hexDump(bytes, max = 64 * 1024) {
  const lines = [];
  const end = Math.min(bytes.length, max);
  for (let at = 0; at < end; at += 16) {
    const row = Array.from(bytes.subarray(at, Math.min(at + 16, end)), (b) => b.toString(16).padStart(2, '0'));
    lines.push(`${at.toString(16).padStart(8, '0')}  ${row.join(' ')}`);
  }
  if (bytes.length > end) lines.push(`… ${count(bytes.length - end)} more bytes`);
  return lines.join('\n');
}

/** Bytes as plain hex pairs separated by spaces (for editing). */
export function hexPairs(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}

/** The bytes of hex text (spaces and newlines ignored), or null if it is not hex. */
export function parseHex(text) {
  const digits = text.replace(/\s+/g, '');
  if (digits.length % 2 !== 0 || /[^0-9a-fA-F]/.test(digits)) return null;
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i += 1) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * How to show a value: `json` (pretty), `text` or `hex`, with the text.
 */
export function describeValue(bytes) {
  const text = utf8Text(bytes);
  if (text === null) return { kind: 'hex', text: hexDump(bytes) };
  const trimmed = text.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    try {
      return { kind: 'json', text: JSON.stringify(JSON.parse(text), null, 2) };
    } catch {
      // Not JSON after all: text.
    }
  }
  return { kind: 'text', text };
}

/** A key's bytes for display: its text, or hex in angle quotes if not UTF-8. */
export function keyLabel(bytes) {
  const text = utf8Text(bytes);
  return text === null ? { text: `⟨${hexPairs(bytes)}⟩`, binary: true } : { text, binary: false };
}

/**
 * Runs `refresh` now and every `ms` while started: a view's poll, started
 * when it is shown and stopped when it is hidden.
 */
export function poller(refresh, ms) {
  let timer = null;
  return {
    start() {
      refresh();
      clearInterval(timer);
      timer = setInterval(refresh, ms);
    },
    stop() {
      clearInterval(timer);
      timer = null;
    },
  };
}

let toastTimer;

/** A short message at the bottom of the page. */
export function toast(message, kind = 'info') {
  const node = document.getElementById('toast');
  node.textContent = message;
  node.className = `show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    node.className = '';
  }, 4000);
}
