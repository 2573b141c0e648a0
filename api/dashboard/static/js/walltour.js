// walltour: tour mode of the video wall (轮巡). The layout's tiles cycle through a camera group
// — the cameras the tree shows, all or those matching its search — every N seconds, and hold
// while any tile shows a camera with an open alert, so nobody misses it. The tour never
// changes the saved layout: stopping it puts the saved tiles back.

import { h } from './dom.js';
import { t } from './i18n.js';
import { api, list } from './api.js';

export const TOUR_SECONDS = [10, 20, 30, 60];

// openAlertDevices is the set of devices with an alert not closed yet (in the caller's scope).
export async function openAlertDevices() {
  try {
    const data = await api('alerts?limit=1000');
    return new Set(list(data, 'alerts').filter((a) => a.state !== 'closed' && a.device_id).map((a) => a.device_id));
  } catch { return new Set(); }
}

// createTour returns the tour's controls. group() is the camera group (objects with id),
// layout() the number of tiles, show(ids) puts ids on the tiles, restore() the saved layout.
export function createTour({ group, layout, show, restore }) {
  let timer = 0;
  let page = 0;
  let running = false;
  let current = [];
  const secs = h('select', { class: 'tour-secs', id: 'wall-tour-secs', 'aria-label': t('wall.tour_every') },
    TOUR_SECONDS.map((n) => h('option', { value: String(n) }, t('wall.tour_secs', { n }))));
  const status = h('span', { class: 'muted tour-status', id: 'wall-tour-status', 'aria-live': 'polite' });
  const button = h('button', { type: 'button', class: 'btn small', id: 'wall-tour', 'aria-pressed': 'false',
    onclick: () => (running ? stop(false) : start()) }, t('wall.tour'));

  async function step(first) {
    if (!running) return;
    const cams = group();
    const n = Math.max(1, layout());
    if (cams.length) {
      const alerts = first ? new Set() : await openAlertDevices();
      if (!running) return;
      const held = current.filter((id) => alerts.has(id));
      if (held.length) {
        status.dataset.paused = '1';
        status.textContent = t('wall.tour_paused', { n: held.length });
      } else {
        const pages = Math.ceil(cams.length / n);
        page = first ? 0 : (page + 1) % pages;
        current = cams.slice(page * n, page * n + n).map((c) => c.id);
        delete status.dataset.paused;
        status.dataset.page = String(page + 1);
        status.textContent = t('wall.tour_page', { page: page + 1, pages });
        show(current);
      }
    }
    timer = setTimeout(() => step(false), Number(secs.value) * 1000);
  }

  function start() {
    running = true;
    button.setAttribute('aria-pressed', 'true');
    button.textContent = t('wall.tour_stop');
    step(true);
  }

  // stop ends the tour and puts the saved layout back (not when quiet: the page is leaving).
  function stop(quiet) {
    if (!running) return;
    running = false;
    clearTimeout(timer);
    button.setAttribute('aria-pressed', 'false');
    button.textContent = t('wall.tour');
    status.textContent = '';
    delete status.dataset.paused;
    delete status.dataset.page;
    current = [];
    if (!quiet) restore();
  }

  return { controls: h('span', { class: 'tour' }, button, secs, status), stop, running: () => running };
}
