// The Live view: the change feed under a prefix (docs/WATCH.md), read with
// fetch and a stream reader rather than EventSource, which cannot send the
// Authorization header. The SSE framing is parsed here; after a drop the
// tail resumes from the seq after the last event seen, so nothing is missed
// or shown twice.

import { headers } from './api.js';
import { el, replace, fromBase64, keyLabel, describeValue, time } from './dom.js';

const KEEP = 200;
let controller = null;
let paused = false;
let nextSeq = null;
let prefix = '';
let retry = null;
const rows = [];

export function init() {
  const input = document.getElementById('live-prefix');
  let debounce;
  input.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      prefix = input.value;
      rows.length = 0;
      nextSeq = null;
      draw();
      restart();
    }, 300);
  });
  document.getElementById('live-toggle').addEventListener('click', () => {
    paused = !paused;
    document.getElementById('live-toggle').textContent = paused ? 'Resume' : 'Pause';
    if (paused) stopStream('Paused.');
    else restart();
  });
}

/** Shows the view, watching `initialPrefix` if the prefix is still empty. */
export function show(initialPrefix) {
  const input = document.getElementById('live-prefix');
  if (!controller && input.value === '' && initialPrefix) {
    input.value = initialPrefix;
    prefix = initialPrefix;
  }
  draw();
  if (!paused) restart();
}

export function hide() {
  stopStream('');
}

function setState(text) {
  document.getElementById('live-state').textContent = text;
}

function stopStream(why) {
  clearTimeout(retry);
  retry = null;
  if (controller) controller.abort();
  controller = null;
  setState(why);
}

function restart() {
  stopStream('');
  const mine = new AbortController();
  controller = mine;
  stream(mine).catch((e) => {
    if (mine.signal.aborted) return;
    setState(`Disconnected (${e.message}); retrying…`);
    retry = setTimeout(() => {
      if (controller === mine) restart();
    }, 1000);
  });
}

/** Splits an SSE stream into messages: {id, event, data}. */
export class SseParser {
  constructor() {
    this.buffer = '';
  }

  /** Feeds text; answers the messages it completes. */
  push(text) {
    this.buffer += text;
    const out = [];
    let end;
    while ((end = this.buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(this.buffer.slice(end).match(/^\r?\n\r?\n/)[0].length + end);
      const message = { id: null, event: 'message', data: [] };
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'id') message.id = value;
        else if (field === 'event') message.event = value;
        else if (field === 'data') message.data.push(value);
      }
      if (message.data.length) out.push({ ...message, data: message.data.join('\n') });
    }
    return out;
  }
}

async function stream(mine) {
  let url = `/watch?prefix=${encodeURIComponent(prefix)}`;
  if (nextSeq !== null) url += `&from_seq=${nextSeq}`;
  setState('Connecting…');
  const response = await fetch(url, {
    headers: headers({ Accept: 'text/event-stream' }),
    signal: mine.signal,
    cache: 'no-store',
  });
  if (response.status === 410) {
    // History a merge dropped: start again from now.
    nextSeq = null;
    throw new Error('the history to resume from was compacted; watching from now');
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail;
    } catch {
      // No JSON body.
    }
    throw new Error(`${response.status} ${detail}`);
  }
  setState(`Watching ${prefix ? `“${prefix}”` : 'every key'}.`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error('the server closed the stream');
    for (const message of parser.push(value)) handle(message);
  }
}

function handle(message) {
  const data = JSON.parse(message.data);
  if (message.event === 'progress') {
    nextSeq = data.next_seq;
    return;
  }
  if (message.event === 'compacted') {
    nextSeq = null;
    return;
  }
  nextSeq = data.seq + 1;
  rows.unshift({ ...data, at: Date.now() });
  rows.length = Math.min(rows.length, KEEP);
  draw();
}

/** The bytes of an event's key or value as the wire wrote it. */
function bytesOf(field, encoding) {
  if (field === undefined || field === null) return null;
  return encoding === 'base64' ? fromBase64(field) : new TextEncoder().encode(field);
}

function draw() {
  const table = document.getElementById('live-events');
  replace(table,
    el('thead', {}, el('tr', {}, ...['Seq', 'Time', 'Change', 'Key', 'Value'].map((h) => el('th', { text: h })))),
    el('tbody', {}, rows.length === 0
      ? el('tr', {}, el('td', { colspan: 5, class: 'muted', text: 'No change yet: writes under the prefix appear here as they commit.' }))
      : rows.map((r) => {
        const key = keyLabel(bytesOf(r.key, r.encoding));
        const value = bytesOf(r.value, r.encoding);
        const shown = value ? describeValue(value).text : '';
        return el('tr', { class: `op-${r.op}`, 'data-seq': r.seq },
          el('td', { text: r.seq }),
          el('td', { text: time(r.at) }),
          el('td', { text: r.op }),
          el('td', { class: 'key', text: key.text }),
          el('td', { class: 'value', text: shown.length > 200 ? `${shown.slice(0, 200)}…` : shown }));
      })));
}
