// wall: the video wall — site/camera tree, 1/4/9/16 layouts, one WHEP player per tile, the
// layout remembered per user at the gateway (wallprefs.js) and in localStorage.

import { h, clear, svg } from '../dom.js';
import { t, tOr } from '../i18n.js';
import { api, list, optional, session } from '../api.js';
import { WhepPlayer } from '../player.js';
import { errorBox, loading } from '../ui.js';
import { deviceState } from '../model.js';
import { gatewayNames, gatewayOf, hasGateways } from '../centre.js';
import { fetchLayout, storeLayout, flushLayout } from '../wallprefs.js';
import { createTour } from '../walltour.js';
import { openRecordingDialog } from '../recording.js';

const LAYOUTS = [1, 4, 9, 16];

function fullIcon() {
  return svg('svg', { viewBox: '0 0 16 16', width: 12, height: 12, 'aria-hidden': 'true' },
    svg('path', { d: 'M1 5V1h4M11 1h4v4M15 11v4h-4M5 15H1v-4', fill: 'none', stroke: 'currentColor', 'stroke-width': 1.8 }));
}

function storeKey() { return `offsite.wall.${session.user?.username || 'anon'}`; }
function loadLayout() {
  try {
    const v = JSON.parse(localStorage.getItem(storeKey()) || 'null');
    if (v && LAYOUTS.includes(v.layout) && Array.isArray(v.tiles)) return { layout: v.layout, tiles: v.tiles.slice(0, 16) };
  } catch { /* start fresh */ }
  return null;
}

export function mount(main) {
  let state = loadLayout();
  let cameras = [];
  let sites = [];
  let camStatus = new Map();
  let gwNames = new Map();
  let selected = 0;
  const players = new Map(); // tile index → { player, cameraId, el }
  let statusTimer = 0;
  let disposed = false;

  const tree = h('div', { class: 'tree', role: 'tree', 'aria-label': t('wall.cameras') }, loading());
  const filter = h('input', { type: 'search', placeholder: t('wall.search'), 'aria-label': t('wall.search'), class: 'tree-filter', oninput: () => renderTree() });
  const grid = h('div', { class: 'wall-grid', id: 'wall-grid' });
  const layoutBtns = LAYOUTS.map((n) => h('button', { type: 'button', class: 'btn small seg', 'data-layout': n, 'aria-pressed': 'false',
    title: t('wall.layout_n', { n }), onclick: () => setLayout(n) }, String(n)));
  const side = h('aside', { class: 'wall-side' },
    h('details', { class: 'tree-box', open: window.matchMedia('(min-width: 761px)').matches },
      h('summary', {}, t('wall.cameras')), filter, tree));
  const tour = createTour({
    group: () => { const q = filter.value.trim().toLowerCase(); return cameras.filter((c) => !q || `${c.name} ${c.id}`.toLowerCase().includes(q)); },
    layout: () => state?.layout || 4,
    show: (ids) => { ensure(); state.tiles = ids.slice(); renderGrid(); renderTree(); },
    restore: () => { state = loadLayout() || state; renderGrid(); renderTree(); },
  });
  const toolbar = h('div', { class: 'wall-toolbar' },
    h('div', { class: 'seg-group', role: 'group', 'aria-label': t('wall.layout') }, h('span', { class: 'muted' }, t('wall.layout')), layoutBtns),
    h('span', { class: 'muted hint-place' }, t('wall.hint')),
    h('div', { class: 'spacer' }),
    tour.controls,
    h('button', { type: 'button', class: 'btn small', id: 'wall-clear', onclick: clearAll }, t('wall.clear_all')),
    h('button', { type: 'button', class: 'btn small', id: 'wall-fullscreen', onclick: () => grid.requestFullscreen?.().catch(() => {}) }, t('wall.fullscreen')));
  main.append(h('div', { class: 'wall' }, side, h('section', { class: 'wall-main', 'aria-label': t('nav.wall') }, toolbar, grid)));

  function save() { localStorage.setItem(storeKey(), JSON.stringify(state)); storeLayout(state); }

  function ensure() { if (!state) state = { layout: 4, tiles: [] }; }

  function setLayout(n) {
    tour.stop(false);
    ensure();
    state.layout = n;
    if (selected >= n) selected = 0;
    save();
    renderGrid();
  }

  function place(idx, cameraId) {
    tour.stop(false);
    ensure();
    // A camera shows in one tile at a time: moving it frees its old tile.
    state.tiles = state.tiles.map((c, i) => (c === cameraId && i !== idx ? null : c));
    state.tiles[idx] = cameraId;
    save();
    selected = nextEmpty(idx);
    renderGrid();
  }

  function nextEmpty(after) {
    for (let k = 1; k <= state.layout; k++) {
      const i = (after + k) % state.layout;
      if (!state.tiles[i]) return i;
    }
    return (after + 1) % state.layout;
  }

  function clearTile(idx) { state.tiles[idx] = null; save(); selected = idx; renderGrid(); }
  function clearAll() { tour.stop(false); ensure(); state.tiles = []; save(); selected = 0; renderGrid(); }

  function camName(id) { const c = cameras.find((x) => x.id === id); return c?.name || id; }

  function renderTree() {
    clear(tree);
    const q = filter.value.trim().toLowerCase();
    const bySite = new Map();
    for (const c of cameras) {
      const sid = c.site_id || c.site?.id || (typeof c.site === 'string' ? c.site : '') || '';
      if (!bySite.has(sid)) bySite.set(sid, []);
      bySite.get(sid).push(c);
    }
    const order = sites.map((s) => s.id).filter((id) => bySite.has(id));
    for (const sid of bySite.keys()) if (!order.includes(sid)) order.push(sid);
    if (!order.length) { tree.append(h('p', { class: 'empty' }, t('wall.no_cameras'))); return; }
    // At a centre the tree is gateway → site → camera: this node's own sites first (本机), then
    // each site gateway with a dot for its health (its cameras' states: all offline means the
    // site cannot be reached). A single node keeps the flat site → camera tree.
    const centre = hasGateways(cameras);
    const siteGroups = new Map(); // gateway id ('' = this node) → [site element]
    for (const sid of order) {
      const site = sites.find((s) => s.id === sid);
      const cams = bySite.get(sid).filter((c) => !q || `${c.name} ${c.id} ${site?.name || ''} ${gwNames.get(gatewayOf(c)) || ''}`.toLowerCase().includes(q));
      if (!cams.length) continue;
      const items = cams.map((c) => {
        const st = deviceState(c, camStatus.get(c.id));
        const onWall = !!state && state.tiles.slice(0, state.layout).includes(c.id);
        return h('li', { role: 'treeitem', 'aria-selected': String(onWall) },
          h('button', { type: 'button', class: `cam${onWall ? ' on-wall' : ''}`, draggable: 'true', 'data-camera': c.id, 'data-state': st,
            title: `${c.name || c.id} · ${tOr(`health.${st}`, st)}`,
            onclick: () => place(selected, c.id),
            ondragstart: (e) => { e.dataTransfer.setData('text/x-offsite-camera', c.id); e.dataTransfer.effectAllowed = 'copy'; } },
          h('span', { class: `dot ${st}`, 'aria-hidden': 'true' }), h('span', { class: 'cam-name' }, c.name || c.id)));
      });
      const el = h('div', { class: 'tree-site', role: 'group', 'data-site': sid },
        h('div', { class: 'tree-site-name', title: site?.address || '' }, site?.name || sid || t('wall.unassigned')),
        h('ul', {}, items));
      if (!centre) { tree.append(el); continue; }
      const gw = gatewayOf(site?.gateway ? site : bySite.get(sid)[0]);
      if (!siteGroups.has(gw)) siteGroups.set(gw, []);
      siteGroups.get(gw).push(el);
    }
    const gwIDs = [...siteGroups.keys()].sort((a, b) => (a === '' ? -1 : b === '' ? 1 : (gwNames.get(a) || a).localeCompare(gwNames.get(b) || b, 'zh-CN')));
    for (const gw of gwIDs) {
      const st = gatewayHealth(cameras.filter((c) => gatewayOf(c) === gw).map((c) => deviceState(c, camStatus.get(c.id))));
      tree.append(h('details', { class: 'tree-gw', open: true, 'data-gateway': gw, 'data-state': st },
        h('summary', { class: 'tree-gw-name', title: `${gw || t('gateways.local')} · ${tOr(`health.${st}`, st)}` },
          h('span', { class: `dot ${st}`, 'aria-hidden': 'true' }), ' ', gw ? (gwNames.get(gw) || gw) : t('gateways.local')),
        siteGroups.get(gw)));
    }
  }

  // gatewayHealth sums up a gateway's cameras: online when all are, offline when none is
  // (the site or its link is down), stalled in between.
  function gatewayHealth(states) {
    if (!states.length) return 'unknown';
    const on = states.filter((s) => s === 'online' || s === 'idle').length;
    if (on === states.length) return 'online';
    if (on === 0 && states.every((s) => s === 'offline')) return 'offline';
    return 'stalled';
  }

  function renderGrid() {
    for (const b of layoutBtns) b.setAttribute('aria-pressed', String(Number(b.dataset.layout) === state.layout));
    grid.className = `wall-grid n${state.layout}`;
    // Stop players of tiles that no longer show the same camera.
    for (const [idx, p] of players) {
      if (idx >= state.layout || state.tiles[idx] !== p.cameraId) { p.player.stop(); players.delete(idx); }
    }
    clear(grid);
    for (let i = 0; i < state.layout; i++) grid.append(tile(i));
    renderTree();
  }

  function tile(i) {
    const camId = state.tiles[i] || null;
    const el = h('div', { class: `tile${i === selected ? ' selected' : ''}`, 'data-index': i, tabindex: '0',
      'aria-label': camId ? camName(camId) : t('wall.empty_tile', { n: i + 1 }),
      onclick: () => { selected = i; for (const x of grid.children) x.classList.toggle('selected', x === el); },
      onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); el.click(); } },
      ondragover: (e) => { e.preventDefault(); el.classList.add('drop'); },
      ondragleave: () => el.classList.remove('drop'),
      ondrop: (e) => { e.preventDefault(); el.classList.remove('drop'); const id = e.dataTransfer.getData('text/x-offsite-camera'); if (id) place(i, id); } });
    if (!camId) {
      el.dataset.state = 'empty';
      el.append(h('div', { class: 'tile-empty' }, h('span', { class: 'plus', 'aria-hidden': 'true' }, '+'), h('span', {}, t('wall.empty_hint'))));
      return el;
    }
    el.dataset.camera = camId;
    let p = players.get(i);
    const video = p ? p.video : h('video', { muted: true, autoplay: true, playsinline: true, 'aria-label': camName(camId) });
    video.muted = true;
    const stateChip = h('span', { class: 'tile-state' });
    const overlay = h('div', { class: 'tile-overlay' });
    const bar = h('div', { class: 'tile-bar' },
      h('span', { class: 'tile-name', title: camId }, camName(camId)), stateChip,
      h('button', { type: 'button', class: 'icon-btn tile-rec', title: t('rec.action'), 'aria-label': t('rec.action'),
        onclick: (e) => { e.stopPropagation(); openRecordingDialog(camId, camName(camId)); } }, h('span', { class: 'rec-dot', 'aria-hidden': 'true' }), t('rec.short')),
      h('button', { type: 'button', class: 'icon-btn', title: t('wall.tile_fullscreen'), 'aria-label': t('wall.tile_fullscreen'),
        onclick: (e) => { e.stopPropagation(); el.requestFullscreen?.().catch(() => {}); } }, fullIcon()),
      h('button', { type: 'button', class: 'icon-btn tile-close', title: t('wall.tile_clear'), 'aria-label': t('wall.tile_clear'),
        onclick: (e) => { e.stopPropagation(); clearTile(i); } }, '✕'));
    el.append(video, overlay, bar);
    const show = (pl) => {
      el.dataset.state = pl.state;
      el.dataset.frames = String(pl.frames || 0);
      stateChip.className = `tile-state s-${pl.state}`;
      stateChip.textContent = tOr(`player.${pl.state}`, pl.state);
      const reason = pl.reason ? tOr(`player.reason.${pl.reason}`, pl.reason) : '';
      overlay.hidden = pl.state === 'playing';
      clear(overlay);
      if (pl.state !== 'playing') {
        overlay.append(h('div', { class: 'ov-title' }, tOr(`player.${pl.state}_long`, tOr(`player.${pl.state}`, pl.state))));
        if (reason) overlay.append(h('div', { class: 'ov-reason tile-reason' }, reason));
        if (pl.nextRetryAt && pl.state !== 'connecting' && pl.state !== 'idle') overlay.append(h('div', { class: 'ov-retry' }, t('player.retrying')));
      }
    };
    if (!p) {
      const player = new WhepPlayer(video, camId, () => {});
      p = { player, cameraId: camId, video };
      players.set(i, p);
      player.onChange = (pl) => p.show?.(pl);
      p.show = show;
      show(player);
      player.start();
    } else {
      p.show = show;
      show(p.player);
    }
    return el;
  }

  async function loadStatus() {
    const data = await optional('cameras').catch(() => null);
    if (disposed || !data) return;
    camStatus = new Map(list(data, 'cameras').map((c) => [c.id, c]));
    renderTree();
  }

  (async () => {
    try {
      const [s, d, g, kept] = await Promise.all([api('sites'), api('devices?kind=camera'), gatewayNames(), fetchLayout()]);
      if (disposed) return;
      gwNames = g;
      if (kept) { state = kept; localStorage.setItem(storeKey(), JSON.stringify(state)); }
      sites = list(s, 'sites');
      cameras = list(d, 'devices').filter((c) => !c.kind || c.kind === 'camera');
    } catch (e) {
      if (disposed) return;
      clear(tree).append(errorBox(e));
    }
    if (!state) {
      // A first visit shows the first four cameras so the wall is never blank.
      state = { layout: 4, tiles: cameras.slice(0, 4).map((c) => c.id) };
      save();
    }
    renderGrid();
    loadStatus();
    statusTimer = setInterval(loadStatus, 15000);
  })();

  // Closing the tab ends the WHEP sessions now rather than when ICE times out on the server.
  const onHide = () => { for (const p of players.values()) p.player.stop(); players.clear(); };
  window.addEventListener('pagehide', onHide);

  return () => {
    window.removeEventListener('pagehide', onHide);
    disposed = true;
    tour.stop(true);
    flushLayout();
    clearInterval(statusTimer);
    for (const p of players.values()) p.player.stop();
    players.clear();
  };
}
