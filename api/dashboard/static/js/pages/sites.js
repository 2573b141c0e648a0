// sites: the supervised sites (监管对象) the user may see — with their USCC, region,
// department, supervision items and devices. At a centre the list holds every site gateway's
// sites too, each naming its gateway, with a filter by gateway.

import { h, clear, debounce } from '../dom.js';
import { t } from '../i18n.js';
import { api, list } from '../api.js';
import { table, select, errorBox, loading } from '../ui.js';
import { deviceState } from '../model.js';
import { gatewayNames, gatewayLabel, gatewayOptions, hasGateways, matchesGateway, gatewayOf } from '../centre.js';

// The key of a site among several gateways' sites: ids are unique per gateway only.
const siteKey = (gw, id) => `${gw}\u0000${id}`;

export function mount(main) {
  let disposed = false;
  let sites = []; let counts = new Map(); let gwNames = new Map();
  const f = { dept: '', gateway: '', q: '' };
  const body = h('div', {}, loading());
  const deptSel = select([['', t('common.all')]], '', { id: 'site-dept' });
  const gwSel = select([['', t('common.all')]], '', { id: 'site-gateway' });
  const search = h('input', { type: 'search', id: 'site-q', placeholder: t('sites.search') });
  const onF = () => { Object.assign(f, { dept: deptSel.value, gateway: gwSel.value, q: search.value.trim().toLowerCase() }); render(); };
  deptSel.addEventListener('change', onF);
  gwSel.addEventListener('change', onF);
  search.addEventListener('input', debounce(onF, 150));
  const lab = (text, el) => h('label', { class: 'filter' }, h('span', {}, text), el);
  const gwFilter = lab(t('gateways.gateway'), gwSel);
  gwFilter.hidden = true;
  const count = h('span', { class: 'muted', id: 'site-count' });
  main.append(h('div', { class: 'page-head' }, h('h1', {}, t('sites.title')), count),
    h('div', { class: 'filters', role: 'search' }, lab(t('site.department'), deptSel), gwFilter, lab(t('common.search'), search)),
    body);

  function render() {
    const centre = hasGateways(sites);
    const rows = sites.filter((s) => (!f.dept || s.department === f.dept) && matchesGateway(s, f.gateway)
      && (!f.q || `${s.id} ${s.name} ${s.uscc} ${s.address} ${s.region_code}`.toLowerCase().includes(f.q)));
    count.textContent = t('sites.count', { n: rows.length });
    const cols = [
      { label: t('site.name'), class: 'full', render: (s) => h('span', {}, h('strong', {}, s.name || s.id), h('br'), h('small', { class: 'muted mono' }, s.id)) },
      centre ? { label: t('gateways.gateway'), render: (s) => gatewayLabel(s, gwNames) } : null,
      { label: t('site.uscc'), render: (s) => s.uscc ? h('span', { class: 'mono' }, s.uscc) : '' },
      { label: t('site.region'), render: (s) => s.region_code || '' },
      { label: t('site.department'), render: (s) => s.department || '' },
      { label: t('site.supervision_item'), render: (s) => (s.supervision_items || []).join(', ') },
      { label: t('sites.devices'), render: (s) => {
        const c = counts.get(siteKey(gatewayOf(s), s.id));
        if (!c) return '0';
        return c.live ? t('sites.devices_online', { n: c.n, online: c.online }) : String(c.n);
      } },
      { label: t('site.address'), class: 'wide', render: (s) => s.address || '' },
    ].filter(Boolean);
    clear(body).append(table(cols, rows, { empty: t('sites.none'), rowAttrs: (s) => ({ 'data-site': s.id, 'data-gateway': gatewayOf(s) }) }));
  }

  async function load() {
    try {
      const [s, d, g] = await Promise.all([api('sites'), api('devices'), gatewayNames()]);
      if (disposed) return;
      sites = list(s, 'sites');
      gwNames = g;
      counts = new Map();
      for (const dev of list(d, 'devices')) {
        const k = siteKey(gatewayOf(dev), dev.site_id);
        const c = counts.get(k) || { n: 0, online: 0, live: false };
        c.n++;
        // The list carries the live state only for a site gateway's devices (at a centre);
        // this node's own answer it per device, so their count goes without "online".
        if (dev.state || dev.presence || dev.status) c.live = true;
        if (deviceState(dev) === 'online') c.online++;
        counts.set(k, c);
      }
      const curDept = deptSel.value;
      const depts = [...new Set(sites.map((x) => x.department).filter(Boolean))].sort();
      clear(deptSel).append(h('option', { value: '' }, t('common.all')), ...depts.map((x) => h('option', { value: x, selected: x === curDept }, x)));
      gwFilter.hidden = !hasGateways(sites);
      const curGw = gwSel.value;
      clear(gwSel).append(...gatewayOptions(sites, gwNames).map(([v, label]) => h('option', { value: v, selected: v === curGw }, label)));
      render();
    } catch (e) { if (!disposed) clear(body).append(errorBox(e)); }
  }

  const timer = setInterval(load, 30000);
  load();
  return () => { disposed = true; clearInterval(timer); };
}
