// centre: what the pages of a city centre share — which site gateway a row came from. At a
// centre the lists of sites, devices and cameras also carry the rows its site gateways
// reported, each with `gateway` (the gateway's id); rows without it are this node's own.

import { h } from './dom.js';
import { t, tOr } from './i18n.js';
import { api, list, session } from './api.js';

// LOCAL is the filter value for this node's own rows.
export const LOCAL = '.local';

// mayReadGateways mirrors api/auth: admin and maintainer list the site gateways.
export function mayReadGateways(role) { return role === 'admin' || role === 'maintainer'; }

// gatewayNames maps gateway id → name for the roles that may list gateways; other roles (and
// a node without the endpoint) get an empty map and the labels show the ids.
export async function gatewayNames() {
  if (!mayReadGateways(session.user?.role)) return new Map();
  try { return new Map(list(await api('gateways'), 'gateways').map((g) => [g.id, g.name || g.id])); }
  catch { return new Map(); }
}

export function gatewayOf(row) { return typeof row?.gateway === 'string' ? row.gateway : ''; }

export function hasGateways(rows) { return rows.some((r) => gatewayOf(r)); }

// gatewayLabel names a row's gateway: its name (id on hover) or 本机 for this node's own rows.
export function gatewayLabel(row, names) {
  const id = gatewayOf(row);
  if (!id) return h('span', { class: 'chip plain gw-label local', 'data-gateway': '' }, t('gateways.local'));
  return h('span', { class: 'chip plain gw-label', 'data-gateway': id, title: id }, names?.get(id) || id);
}

// gatewayOptions are the options of a gateway filter: all, this node, every gateway seen.
export function gatewayOptions(rows, names) {
  const ids = [...new Set(rows.map(gatewayOf).filter(Boolean))].sort();
  return [['', t('common.all')], [LOCAL, t('gateways.local')], ...ids.map((id) => [id, names?.get(id) || id])];
}

// matchesGateway tells whether row passes the filter value f ('' = any).
export function matchesGateway(row, f) {
  if (!f) return true;
  if (f === LOCAL) return !gatewayOf(row);
  return gatewayOf(row) === f;
}

// reasonText translates the reason codes a site gateway reports for a device (the relay's
// codes, e.g. camera_unreachable) and leaves a sentence as it is.
export function reasonText(r) { return r ? tOr(`player.reason.${r}`, r) : ''; }
