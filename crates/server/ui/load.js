// The Load view: requests per second and HTTP latency percentiles over the
// last minutes, and the open connections, from /metrics polled every 2 s
// (the Prometheus text format, parsed here: rates and percentiles come from
// the differences between two polls).

import { call } from './api.js';
import { replace, count, total } from './dom.js';
import { lineChart } from './charts.js';

const POLL_MS = 2000;
const SPAN_MS = 5 * 60 * 1000;

/** Routes whose requests are the console's own (left out of the rates). */
const OWN_ROUTES = new Set(['/metrics', '/stats', '/ui', '/ui/', '/ui/{file}']);

const history = { http: [], resp: [], p50: [], p99: [] };
let previous = null;
let timer = null;
let visible = false;
let lastGauges = null;

/**
 * Parses the text format: [{name, labels: {..}, value}] (comments and
 * malformed lines skipped).
 */
export function parseMetrics(text) {
  const samples = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const row of text.split('\n')) {
    if (row.startsWith('#') || row.trim() === '') continue;
    const m = row.match(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(label)) labels[l[1]] = l[2].replace(/\\(.)/g, '$1');
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return samples;
}

/** The totals one poll needs. */
function digest(samples) {
  const d = { at: Date.now(), http: 0, resp: 0, buckets: new Map(), gauges: {} };
  for (const s of samples) {
    if (s.name === 'bitcask_http_requests_total' && !OWN_ROUTES.has(s.labels.route)) d.http += s.value;
    else if (s.name === 'bitcask_resp_commands_total') d.resp += s.value;
    else if (s.name === 'bitcask_http_request_duration_seconds_bucket' && !OWN_ROUTES.has(s.labels.route)) {
      const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
      d.buckets.set(le, (d.buckets.get(le) || 0) + s.value);
    } else if (!s.name.endsWith('_bucket') && Object.keys(s.labels).length === 0) d.gauges[s.name] = s.value;
  }
  return d;
}

/**
 * The `q` quantile of the requests between two cumulative histograms, in
 * seconds (linear within a bucket); null when none were answered.
 */
export function quantile(q, before, after) {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const counts = bounds.map((le) => (after.get(le) || 0) - ((before && before.get(le)) || 0));
  const all = counts[counts.length - 1];
  if (!all || all <= 0) return null;
  const rank = q * all;
  for (let i = 0; i < bounds.length; i += 1) {
    if (counts[i] >= rank) {
      const low = i === 0 ? 0 : bounds[i - 1];
      const high = bounds[i] === Infinity ? low : bounds[i];
      const below = i === 0 ? 0 : counts[i - 1];
      const inBucket = counts[i] - below;
      return inBucket > 0 ? low + ((high - low) * (rank - below)) / inBucket : high;
    }
  }
  return bounds.length > 1 ? bounds[bounds.length - 2] : null;
}

async function poll() {
  let samples;
  try {
    samples = parseMetrics(await (await call('GET', '/metrics')).text());
  } catch {
    return;
  }
  const now = digest(samples);
  if (previous) {
    const seconds = Math.max(0.001, (now.at - previous.at) / 1000);
    const push = (series, value) => {
      series.push([now.at, value]);
      while (series.length && series[0][0] < now.at - SPAN_MS) series.shift();
    };
    push(history.http, Math.max(0, now.http - previous.http) / seconds);
    push(history.resp, Math.max(0, now.resp - previous.resp) / seconds);
    const p50 = quantile(0.5, previous.buckets, now.buckets);
    const p99 = quantile(0.99, previous.buckets, now.buckets);
    // No request between the polls: no percentile (a gap, not a zero).
    if (p50 !== null) push(history.p50, p50 * 1000);
    if (p99 !== null) push(history.p99, p99 * 1000);
  }
  previous = now;
  lastGauges = now.gauges;
  if (visible) draw();
}

function draw() {
  const g = lastGauges || {};
  const gauge = (label, name, field) => total(label, g[name] === undefined ? '–' : count(g[name]), field);
  const last = (series) => (series.length ? series[series.length - 1][1] : 0);
  replace(document.getElementById('load-gauges'),
    total('HTTP requests/s', last(history.http).toFixed(1), 'http-rate'),
    total('RESP commands/s', last(history.resp).toFixed(1), 'resp-rate'),
    gauge('HTTP connections', 'bitcask_http_connections', 'http-connections'),
    gauge('HTTP requests in flight', 'bitcask_http_requests_in_flight', 'in-flight'),
    gauge('RESP clients', 'bitcask_resp_connections', 'resp-connections'),
    gauge('watchers', 'bitcask_watchers', 'watchers'));
  // The charts' width in pixels: the container's, less its padding.
  const width = Math.max(320, document.getElementById('load-rate').clientWidth - 18);
  replace(document.getElementById('load-rate'), lineChart([
    { name: 'HTTP requests/s', cls: 'http', points: history.http },
    { name: 'RESP commands/s', cls: 'resp', points: history.resp },
  ], { spanMs: SPAN_MS, width, format: (v) => v.toFixed(v < 10 ? 1 : 0) }));
  replace(document.getElementById('load-latency'), lineChart([
    { name: 'p50 (ms)', cls: 'p50', points: history.p50 },
    { name: 'p99 (ms)', cls: 'p99', points: history.p99 },
  ], { spanMs: SPAN_MS, width, format: (v) => `${v < 1 ? v.toFixed(2) : v.toFixed(0)} ms` }));
}

/** Starts polling (from the page's start, so the history is there when the view opens). */
export function init() {
  poll();
  timer = setInterval(poll, POLL_MS);
}

export function stop() {
  clearInterval(timer);
}

export function show() {
  visible = true;
  draw();
}

export function hide() {
  visible = false;
}
