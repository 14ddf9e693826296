// The Cluster view: this node's view of its cluster (GET /cluster), or
// that it is a single node.

import { getJson } from './api.js';
import { el, replace, count, poller, total } from './dom.js';

const poll = poller(() => refresh(), 2000);

export function show() {
  poll.start();
}

export function hide() {
  poll.stop();
}

async function refresh() {
  const panel = document.getElementById('cluster-panel');
  let status;
  try {
    status = await getJson('/cluster');
  } catch (e) {
    replace(panel, el('p', { class: e.status === 400 || e.status === 404 ? 'muted' : 'error', 'data-field': 'cluster-state', text: e.message }));
    return;
  }
  const lag = new Map((status.replication || []).map((r) => [r.node_id, r]));
  const opt = (v) => (v === null || v === undefined ? '–' : count(v));
  replace(panel,
    el('div', { class: 'totals' },
      ...[['node', status.node_id], ['role', status.role], ['leader', status.leader_id ?? 'none known'], ['term', status.term],
        ['applied index', opt(status.last_applied)], ['committed', opt(status.committed)], ['last log index', opt(status.last_log_index)]]
        .map(([label, value]) => total(label, value))),
    el('table', { class: 'grid', 'data-field': 'members' },
      el('thead', {}, el('tr', {}, ...['Node', 'Peer address', 'Votes', 'Role', 'Matched', 'Lag (entries)'].map((h) => el('th', { text: h })))),
      el('tbody', {}, status.members.map((m) => el('tr', {},
        el('td', { text: m.node_id }),
        el('td', { text: m.peer_addr }),
        el('td', { text: m.voter ? 'yes' : 'no (learner)' }),
        el('td', { text: m.node_id === status.leader_id ? 'leader' : 'follower' }),
        el('td', { text: lag.has(m.node_id) ? opt(lag.get(m.node_id).matched) : '–' }),
        el('td', { text: lag.has(m.node_id) ? count(lag.get(m.node_id).lag) : 'seen from the leader only' }))))));
}
