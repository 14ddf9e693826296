// Two small SVG charts, drawn by hand: a stacked bar chart (space per data
// file) and a line chart (rates and latencies over time). Labels are SVG
// text nodes, never markup.

import { svg } from './dom.js';

/**
 * Stacked bars: `bars` is [{label, title, parts: [{value, cls}]}], drawn
 * left to right, heights to scale with the tallest bar.
 */
export function stackedBars(bars, { height = 180, format = String } = {}) {
  const width = Math.max(320, bars.length * 34 + 60);
  const top = 10;
  const bottom = 24;
  const left = 56;
  const plot = height - top - bottom;
  const max = Math.max(1, ...bars.map((b) => b.parts.reduce((s, p) => s + p.value, 0)));
  const slot = (width - left - 10) / Math.max(1, bars.length);
  const barWidth = Math.max(4, Math.min(28, slot - 6));
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, class: 'bars', role: 'img' });
  root.append(axis(left, top, plot, max, format, width));
  bars.forEach((bar, i) => {
    const x = left + i * slot + (slot - barWidth) / 2;
    let y = top + plot;
    const group = svg('g', { class: 'bar', 'data-label': bar.label });
    group.append(svg('title', { text: bar.title }));
    for (const part of bar.parts) {
      const h = (part.value / max) * plot;
      y -= h;
      group.append(svg('rect', { x, y, width: barWidth, height: Math.max(0, h), class: part.cls }));
    }
    group.append(svg('text', { x: x + barWidth / 2, y: height - 8, 'text-anchor': 'middle', class: 'tick', text: bar.label }));
    root.append(group);
  });
  return root;
}

/** A y axis with three gridlines. */
function axis(left, top, plot, max, format, width) {
  const g = svg('g', { class: 'axis' });
  for (const f of [0, 0.5, 1]) {
    const y = top + plot - f * plot;
    g.append(svg('line', { x1: left, x2: width - 6, y1: y, y2: y }));
    g.append(svg('text', { x: left - 6, y: y + 4, 'text-anchor': 'end', class: 'tick', text: format(max * f) }));
  }
  return g;
}

/**
 * Lines over time: `series` is [{name, cls, points: [[unixMs, value]]}],
 * the x axis covering the points (at least 10 s, at most `spanMs`) up to
 * the newest; `width` in pixels (the container's, so text is not stretched).
 */
export function lineChart(series, { height = 160, width = 640, spanMs = 5 * 60 * 1000, format = String } = {}) {
  const top = 10;
  const bottom = 22;
  const left = 56;
  const plot = height - top - bottom;
  const all = series.flatMap((s) => s.points);
  const newest = all.length ? Math.max(...all.map((p) => p[0])) : Date.now();
  const first = all.length ? Math.min(...all.map((p) => p[0])) : newest;
  const span = Math.max(10_000, Math.min(spanMs, newest - first));
  const oldest = newest - span;
  const max = Math.max(1e-9, ...all.map((p) => p[1]));
  const root = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, class: 'lines', role: 'img' });
  root.append(axis(left, top, plot, max, format, width));
  const x = (t) => left + ((t - oldest) / span) * (width - left - 6);
  const y = (v) => top + plot - (v / max) * plot;
  for (const s of series) {
    const points = s.points.filter((p) => p[0] >= oldest);
    if (points.length === 0) continue;
    const d = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(' ');
    const path = svg('path', { d, class: `line ${s.cls}` });
    path.append(svg('title', { text: s.name }));
    root.append(path);
  }
  const label = span < 120_000 ? `last ${Math.round(span / 1000)} s` : `last ${Math.round(span / 60000)} min`;
  root.append(svg('text', { x: left, y: height - 6, class: 'tick', text: label }));
  return root;
}
