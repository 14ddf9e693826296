// The Space view: live and dead bytes per data file, totals, the recent
// merges, and a merge started by hand with its progress.

import { call, getJson } from './api.js';
import { el, replace, bytes, count, duration, time, toast, poller, total } from './dom.js';
import { stackedBars } from './charts.js';

const poll = poller(() => refresh(), 2000);
let merging = false;

export function init() {
  document.getElementById('merge-now').addEventListener('click', mergeNow);
}

/** Shows the view: refreshes every 2 s while it is shown. */
export function show() {
  poll.start();
}

export function hide() {
  poll.stop();
}

async function refresh() {
  let stats;
  try {
    stats = await getJson('/stats');
  } catch (e) {
    replace(document.getElementById('space-totals'), el('p', { class: 'error', text: e.message }));
    return;
  }
  const live = stats.total_bytes ? Math.round((stats.live_bytes / stats.total_bytes) * 100) : 0;
  replace(document.getElementById('space-totals'),
    total('keys', count(stats.keys), 'keys'),
    total('on disk', bytes(stats.total_bytes), 'total'),
    total(`live (${live}%)`, bytes(stats.live_bytes), 'live'),
    total('dead: a merge reclaims it', bytes(stats.dead_bytes), 'dead'),
    total('data files', count(stats.data_files), 'files'),
    total('merges since start', count(stats.merges_completed), 'merges'));
  const bars = stats.files.map((f) => ({
    label: `${f.id}${f.active ? '*' : ''}`,
    title: `file ${f.id}${f.active ? ' (active)' : ''}: ${bytes(f.live_bytes)} live in ${count(f.live_keys)} keys, ${bytes(f.dead_bytes)} dead, ${bytes(f.total_bytes)} in all`,
    parts: [
      { value: f.live_bytes, cls: 'live' },
      { value: f.dead_bytes, cls: 'dead' },
      { value: Math.max(0, f.total_bytes - f.live_bytes - f.dead_bytes), cls: 'other' },
    ],
  }));
  replace(document.getElementById('space-chart'), stackedBars(bars, { format: bytes }));
  const merges = stats.recent_merges || (stats.last_merge ? [stats.last_merge] : []);
  const table = document.getElementById('merge-history');
  replace(table,
    el('thead', {}, el('tr', {}, ...['Started', 'Took', 'Files merged', 'Files written', 'Reclaimed', 'Records kept', 'Dropped'].map((h) => el('th', { text: h })))),
    el('tbody', {}, merges.length === 0
      ? el('tr', {}, el('td', { colspan: 7, class: 'muted', text: 'No merge since the server started.' }))
      : merges.map((m) => el('tr', {},
        el('td', { text: time(m.started_at_ms) }),
        el('td', { text: duration(m.duration_ms) }),
        el('td', { text: count(m.files_merged) }),
        el('td', { text: count(m.files_written) }),
        el('td', { text: bytes(m.bytes_reclaimed) }),
        el('td', { text: count(m.records_kept) }),
        el('td', { text: count(m.records_dropped) })))));
  showProgress(stats);
}

function showProgress(stats) {
  const bar = document.getElementById('merge-progress');
  const state = document.getElementById('merge-state');
  const running = stats.merge_running || merging;
  document.getElementById('merge-now').disabled = running;
  bar.hidden = !running;
  if (stats.merge_progress) {
    const { bytes_read: read, bytes_total: all } = stats.merge_progress;
    bar.max = Math.max(1, all);
    bar.value = read;
    state.textContent = `Merging: ${bytes(read)} of ${bytes(all)} read`;
  } else if (running) {
    bar.removeAttribute('value');
    state.textContent = 'Merging…';
  } else {
    state.textContent = stats.last_merge ? `Last merge ${time(stats.last_merge.started_at_ms)}` : '';
  }
}

async function mergeNow() {
  merging = true;
  document.getElementById('merge-now').disabled = true;
  const poll = setInterval(refresh, 250);
  try {
    const report = await (await call('POST', '/admin/merge')).json();
    toast(`Merge done: ${report.files_merged} files merged, ${bytes(report.bytes_reclaimed)} reclaimed.`);
  } catch (e) {
    toast(`Merge failed: ${e.message}`, 'error');
  } finally {
    merging = false;
    clearInterval(poll);
    refresh();
  }
}
