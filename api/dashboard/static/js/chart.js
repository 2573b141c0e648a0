// chart: a small SVG line chart for readings — no chart library, nothing to download.

import { svg, h } from './dom.js';
import { t, locale, fmtNum } from './i18n.js';

// lineChart draws points [{t: Date, v: number}] with an optional limit line and a marker
// time (the moment an alert occurred). It scales to its container's width.
export function lineChart({ points, unit = '', limit, marker, highlight, from, to, label = '' }) {
  const wrap = h('figure', { class: 'chart', role: 'img', 'aria-label': label || t('chart.readings') });
  points = (points || []).slice();
  // The reading that raised the alert is always shown, even when the telemetry was averaged
  // over a step that hides it.
  if (highlight && typeof highlight.v === 'number' && highlight.t instanceof Date && !isNaN(highlight.t)) {
    if (!points.some((p) => p.t.getTime() === highlight.t.getTime())) points.push(highlight);
    points.sort((a, b) => a.t - b.t);
  }
  if (points.length === 0) {
    wrap.append(h('div', { class: 'chart-empty' }, t('chart.no_data')));
    return wrap;
  }
  // Drawn in CSS pixels at the figure's real width, so the labels keep their size on a phone;
  // redrawn when the width changes.
  let drawnWidth = 0;
  const ro = new ResizeObserver(() => {
    if (!wrap.isConnected) { if (drawnWidth) ro.disconnect(); return; }
    const w = Math.round(wrap.clientWidth);
    if (w > 0 && w !== drawnWidth) { drawnWidth = w; draw(w); }
  });
  ro.observe(wrap);
  const draw = (W) => {
    const old = wrap.querySelector('svg');
    const g = plot({ points, unit, limit, marker, highlight, from, to, W });
    if (old) old.replaceWith(g); else wrap.prepend(g);
  };
  if (unit) wrap.append(h('figcaption', { class: 'chart-unit' }, `${t('chart.unit')}: ${unit}`));
  // HJ 212 stations flag maintenance (M) and calibration (C) periods: shaded, with a legend.
  const shaded = BANDS.filter((f) => points.some((p) => (p.flags || '').includes(f)));
  if (shaded.length) {
    wrap.append(h('div', { class: 'chart-legend' }, ...shaded.map((f) =>
      h('span', { class: `legend legend-${f}` }, h('i', { class: `swatch band-${f}` }), `${t(`chart.flag.${f}`)} (${f})`))));
  }
  return wrap;
}

// BANDS are the data flags drawn as shaded periods.
const BANDS = ['M', 'C'];

function flagText(flags) {
  return [...(flags || '')].map((f) => `${f} ${t(`chart.flag.${f}`)}`).join(', ');
}

function plot({ points, unit, limit, marker, highlight, from, to, W }) {
  const H = W < 500 ? 220 : 260; const L = W < 500 ? 44 : 56; const R = 12; const T = 16; const B = 30;
  const t0 = (from || points[0].t).getTime();
  let t1 = (to || points[points.length - 1].t).getTime();
  if (t1 <= t0) t1 = t0 + 60000;
  let lo = Math.min(...points.map((p) => p.v));
  let hi = Math.max(...points.map((p) => p.v));
  if (typeof limit === 'number') { lo = Math.min(lo, limit); hi = Math.max(hi, limit); }
  if (hi === lo) { hi += 1; lo -= 1; }
  const pad = (hi - lo) * 0.08; hi += pad; lo -= pad;
  const x = (ms) => L + ((ms - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);

  const g = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'chart-svg' });
  // Horizontal grid and y labels.
  for (const v of niceTicks(lo, hi, 5)) {
    g.append(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
    g.append(svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, fmtNum(v, 2)));
  }
  // Time labels.
  const span = t1 - t0;
  const withDate = span > 20 * 3600e3;
  const nt = W < 500 ? 2 : 4;
  for (let i = 0; i <= nt; i++) {
    const ms = t0 + (span * i) / nt;
    const d = new Date(ms);
    const txt = withDate
      ? d.toLocaleString(locale(), { month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hour12: false })
      : d.toLocaleTimeString(locale(), { hour: '2-digit', minute: '2-digit', hour12: false });
    g.append(svg('text', { x: x(ms), y: H - 10, 'text-anchor': i === 0 ? 'start' : i === nt ? 'end' : 'middle', class: 'tick' }, txt));
  }
  // Shaded periods: from each flagged point to the next one (or one typical gap further).
  const gap = points.length > 1 ? (points[points.length - 1].t - points[0].t) / (points.length - 1) : 60000;
  points.forEach((p, i) => {
    for (const f of BANDS) {
      if (!(p.flags || '').includes(f)) continue;
      const a = x(p.t.getTime());
      const b = x(i + 1 < points.length ? points[i + 1].t.getTime() : p.t.getTime() + gap);
      g.append(svg('rect', { x: a, y: T, width: Math.max(1, b - a), height: H - T - B, class: `band band-${f}` },
        svg('title', {}, `${p.t.toLocaleString(locale(), { hour12: false })}  ${flagText(f)}`)));
    }
  });
  if (typeof limit === 'number') {
    g.append(svg('line', { x1: L, x2: W - R, y1: y(limit), y2: y(limit), class: 'limit' }));
    g.append(svg('text', { x: L + 6, y: y(limit) - 5, 'text-anchor': 'start', class: 'limit-label' }, `${t('chart.limit')} ${fmtNum(limit, 2)}`));
  }
  if (marker) {
    const mx = x(marker.getTime());
    if (mx >= L && mx <= W - R) g.append(svg('line', { x1: mx, x2: mx, y1: T, y2: H - B, class: 'marker' }));
  }
  const d = points.map((p, i) => `${i ? 'L' : 'M'}${x(p.t.getTime()).toFixed(1)},${y(p.v).toFixed(1)}`).join('');
  g.append(svg('path', { d, class: 'line' }));
  if (highlight && typeof highlight.v === 'number') {
    g.append(svg('circle', { cx: x(highlight.t.getTime()), cy: y(highlight.v), r: 5, class: 'dot hl' },
      svg('title', {}, `${highlight.t.toLocaleString(locale(), { hour12: false })}  ${fmtNum(highlight.v, 2)} ${unit}`)));
  }
  if (points.length <= 120) {
    for (const p of points) {
      // Flagged values (not N) are not judged against the limit: never drawn as over it.
      const over = typeof limit === 'number' && p.v > limit && !p.flags;
      const cls = over ? 'dot over' : p.flags ? 'dot flagged' : 'dot';
      g.append(svg('circle', { cx: x(p.t.getTime()), cy: y(p.v), r: over ? 3.5 : 2.2, class: cls },
        svg('title', {}, `${p.t.toLocaleString(locale(), { hour12: false })}  ${fmtNum(p.v, 2)} ${unit}${p.flags ? `  [${flagText(p.flags)}]` : ''}`)));
    }
  }
  return g;
}

function niceTicks(lo, hi, n) {
  const step0 = (hi - lo) / n;
  const mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) || step0;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toFixed(10));
  return out;
}
