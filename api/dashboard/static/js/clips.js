// clips: an evidence clip in the alert detail (docs/contracts.md §9) — the browser's own
// <video> player over the gateway's byte ranges (H.264), a seek bar that marks the event's
// moment (event_at − start), the sha256 and a download. H.265 clips are offered as a download
// with the reason they do not play. The gateway audits every play (evidence.view) and every
// download (evidence.download); nothing is played before the user asks (preload none), so an
// opened page is not recorded as a view.

import { h } from './dom.js';
import { t, fmtTime } from './i18n.js';
import { withToken } from './api.js';

function ms(v) { const d = v ? new Date(v) : null; return d && !isNaN(d) ? d.getTime() : NaN; }

// isClip says whether an evidence entry is a video clip.
export function isClip(x) {
  return x && (x.kind === 'clip' || (x.mime || '').startsWith('video/') || /\.(mp4|webm)(\?|$)/.test(x.url || ''));
}

// downloadURL is the entry's file as an attachment named with its sha256.
export function downloadURL(x) {
  const u = new URL(x.url, location.origin);
  u.searchParams.set('download', '1');
  return withToken(u.pathname + u.search);
}

// clipView renders one clip entry.
export function clipView(x, n) {
  const start = ms(x.start);
  const end = ms(x.end);
  const at = ms(x.event_at);
  const span = (end - start) / 1000;
  const offset = (at - start) / 1000; // seconds into the clip where the event happened
  const hasMoment = Number.isFinite(offset) && offset >= 0 && (!Number.isFinite(span) || offset <= span + 1);
  const h265 = /^(h265|hevc)$/i.test(x.codec || '');
  const label = t('clip.label', { n });

  const facts = h('dl', { class: 'facts clip-facts' },
    Number.isFinite(start) && Number.isFinite(end) ? [h('dt', {}, t('clip.covers')), h('dd', {}, `${fmtTime(x.start)} – ${fmtTime(x.end)}`)] : null,
    hasMoment ? [h('dt', {}, t('clip.event_moment')), h('dd', {}, `${fmtTime(x.event_at)} (${t('clip.seconds_in', { s: offset.toFixed(1) })})`)] : null,
    [h('dt', {}, 'SHA-256'), h('dd', {}, h('code', { class: 'sha256', title: t('clip.sha_hint') }, x.sha256 || '—'))]);
  const download = h('a', { class: 'btn small clip-download', href: downloadURL(x), download: `evidence-${x.sha256 || ''}.mp4`, rel: 'noopener' }, t('clip.download'));
  const notes = [];
  if (x.complete === false) notes.push(h('p', { class: 'alert-box muted clip-incomplete' }, t('clip.incomplete', { note: x.note || '' })));

  if (h265) {
    return h('figure', { class: 'clip clip-h265', 'data-sha256': x.sha256 || '' },
      h('figcaption', {}, label),
      h('p', { class: 'alert-box muted clip-no-play', role: 'note' }, t('clip.h265')),
      notes, facts, h('div', { class: 'clip-actions' }, download));
  }

  const video = h('video', { class: 'clip-video', src: withToken(x.url), controls: true, preload: 'none', playsinline: true, 'aria-label': label,
    'data-event-offset': hasMoment ? offset.toFixed(3) : '' });
  const progress = h('div', { class: 'clip-progress' });
  const marker = hasMoment ? h('div', { class: 'clip-marker', title: t('clip.event_moment') }, h('span', {}, t('clip.event_moment'))) : null;
  const bar = h('div', { class: 'clip-bar', role: 'slider', tabindex: '0', 'aria-label': t('clip.seek'),
    'aria-valuemin': '0', 'aria-valuemax': Number.isFinite(span) ? span.toFixed(1) : '0', 'aria-valuenow': '0' }, progress, marker);
  const duration = () => (Number.isFinite(video.duration) && video.duration > 0 ? video.duration : span);
  const place = () => {
    const d = duration();
    if (!(d > 0)) return;
    if (marker) marker.style.left = `${Math.min(100, (offset / d) * 100)}%`;
    progress.style.width = `${Math.min(100, (video.currentTime / d) * 100)}%`;
    bar.setAttribute('aria-valuenow', video.currentTime.toFixed(1));
  };
  const seek = (sec) => {
    const d = duration();
    video.currentTime = Math.max(0, Math.min(sec, d > 0 ? d - 0.05 : sec));
    place();
  };
  bar.addEventListener('click', (e) => {
    const r = bar.getBoundingClientRect();
    const d = duration();
    if (d > 0 && r.width > 0) seek(((e.clientX - r.left) / r.width) * d);
  });
  bar.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowRight') { seek(video.currentTime + 1); e.preventDefault(); }
    if (e.key === 'ArrowLeft') { seek(video.currentTime - 1); e.preventDefault(); }
  });
  video.addEventListener('timeupdate', place);
  video.addEventListener('loadedmetadata', place);
  const failed = h('p', { class: 'alert-box muted clip-no-play', role: 'note', hidden: true }, t('clip.cannot_play'));
  video.addEventListener('error', () => { failed.hidden = false; });
  const jump = hasMoment ? h('button', { type: 'button', class: 'btn small clip-jump', onclick: () => { seek(Math.max(0, offset - 2)); video.play().catch(() => {}); } }, t('clip.jump')) : null;
  requestAnimationFrame(place);
  return h('figure', { class: 'clip', 'data-sha256': x.sha256 || '' },
    h('figcaption', {}, label), video, bar, failed, notes, facts, h('div', { class: 'clip-actions' }, jump, download));
}
