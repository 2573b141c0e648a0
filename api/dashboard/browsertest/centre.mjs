// Browser scenarios of the dashboard at a city centre (issue 13): the 站点网关 page and the
// devices of site gateways, each labelled with its gateway. Usage:
//
//   node centre.mjs CENTRE_URL SETUP_JSON PHASE
//
// SETUP_JSON (written by gateway/centre_browser_test.go, which runs the centre and the site
// gateways as real `offsite serve` processes):
//   {"admin": {"username", "password"},
//    "site": {"id", "name", "devices": N, "refusal": "text of its last refusal",
//             "site_name", "department", "camera",
//             "sensor": {"id", "site", "topic", "mqtt", "username", "password"}},
//    "enrol": {"id", "name", "secret_file"},
//    "second": {"id", "name", "devices": N}}
// PHASE:
//   enrol   the site gateway is online with its device count and its refusal; an admin enrols
//           another gateway and sees its secret once, with the uplink snippet, then rotates it
//           (the new secret is written to enrol.secret_file so the test can start that
//           gateway with it)
//   verify  both gateways online; the devices page names each device's gateway, filters by
//           gateway, and shows a site sensor's live state after it publishes a reading; the
//           sites page and the wall's tree name the gateways; a maintainer reads but cannot
//           change; an officer has no gateways page and sees only his department's devices
//   finish  the second gateway, stopped, shows 离线 (the first still 在线); removing both
//           gateways (confirmed) leaves the page explaining enrolment and the lists without a
//           gateway column or filter
// Environment: OFFSITE_TEST_ARTIFACTS (screenshots), CHROMIUM (default /usr/bin/chromium).
// Exit status 0 when every step passed and no page threw.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { publish } from './mqtt.mjs';

const [base0, setupPath, phase] = process.argv.slice(2);
if (!base0 || !setupPath || !['enrol', 'verify', 'finish'].includes(phase)) {
  console.error('usage: node centre.mjs CENTRE_URL SETUP_JSON enrol|verify|finish');
  process.exit(2);
}
const BASE = base0.replace(/\/+$/, '');
const setup = JSON.parse(fs.readFileSync(setupPath, 'utf8'));
const OUT = process.env.OFFSITE_TEST_ARTIFACTS || path.resolve('artifacts/screens');
fs.mkdirSync(OUT, { recursive: true });
const pageErrors = [];
const results = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});

function assert(c, msg) { if (!c) throw new Error(msg); }

async function newPage({ lang = 'zh-CN', width = 1920, height = 1080 } = {}) {
  const ctx = await browser.newContext({ viewport: { width, height }, locale: lang, timezoneId: 'Asia/Shanghai' });
  await ctx.addInitScript((l) => { if (!localStorage.getItem('offsite.lang.set')) { localStorage.setItem('offsite.lang', l); localStorage.setItem('offsite.lang.set', '1'); } }, lang);
  // Clipboard writes need the permission in a headless browser.
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE }).catch(() => {});
  const page = await ctx.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${page.url()}: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource|ERR_ABORTED/.test(m.text())) pageErrors.push(`console: ${m.text()}`); });
  return { ctx, page };
}

async function login(page, user) {
  await page.goto(`${BASE}/#/login`);
  await page.fill('#login-username', user.username);
  await page.fill('#login-password', user.password);
  await page.click('#login-submit');
  await page.waitForSelector('header.topbar', { timeout: 15000 });
}

async function apiToken(user) {
  const res = await fetch(`${BASE}/api/v1/auth/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: user.username, password: user.password }) });
  assert(res.ok, `login ${user.username}: ${res.status}`);
  return (await res.json()).token;
}

async function shot(page, name) { await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true }); }

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, status: 'pass' });
    console.log(`PASS ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push({ name, status: 'fail', msg: e.message });
    console.log(`FAIL ${name}: ${e.message}`);
  }
}

const rowSel = (id) => `tr[data-gateway="${id}"]`;
const text = (page, sel) => page.$eval(sel, (el) => el.innerText);

// cell returns the visible text of a gateway row's column, found by its header label.
async function cell(page, id, label) {
  return page.$eval(rowSel(id), (tr, label) => [...tr.children].find((td) => td.dataset.label === label)?.innerText.trim() ?? null, label);
}

async function gatewaysPage(page) {
  await page.click('a.nav-link[data-route="gateways"]');
  await page.waitForSelector('.page-gateways table.data, .page-gateways #gw-intro', { timeout: 10000 });
}

// waitRow waits (reloading the page's data by its own 10 s refresh) until a gateway's row has
// the wanted state.
async function waitState(page, id, state, timeout = 45000) {
  await page.waitForSelector(`${rowSel(id)}[data-state="${state}"]`, { timeout });
}

let firstSecret = '';
if (phase === 'enrol') {
  const { page } = await newPage();
  await step('login as admin at the centre', async () => {
    await login(page, setup.admin);
    const nav = await text(page, 'nav.mainnav');
    assert(nav.includes('站点网关'), `navigation shows no 站点网关 for an admin: ${nav}`);
  });
  await step('site gateway online with its devices and refusal', async () => {
    await gatewaysPage(page);
    await waitState(page, setup.site.id, 'online');
    const row = await text(page, rowSel(setup.site.id));
    assert(row.includes(setup.site.name) && row.includes(setup.site.id), `row does not name the gateway: ${row}`);
    assert((await cell(page, setup.site.id, '状态')) === '在线', `state cell: ${await cell(page, setup.site.id, '状态')}`);
    const devs = await cell(page, setup.site.id, '设备');
    assert(devs === String(setup.site.devices), `device count ${devs}, want ${setup.site.devices}`);
    const seen = await cell(page, setup.site.id, '最近联系');
    assert(/秒前|分钟前/.test(seen), `last contact is not recent: ${seen}`);
    assert(/^#\d+$/.test(await cell(page, setup.site.id, '清单版本')), 'no inventory revision');
    // The refused request the test sent: its count, and the reason when expanded.
    assert((await cell(page, setup.site.id, '拒收')).startsWith('1'), `refused: ${await cell(page, setup.site.id, '拒收')}`);
    await page.click(`${rowSel(setup.site.id)} .gw-refused summary`);
    const refusal = await page.$eval(`${rowSel(setup.site.id)} .gw-refused`, (d) => d.innerText);
    assert(refusal.includes(setup.site.refusal), `last refusal not shown: ${refusal}`);
    const count = await text(page, '#gw-count');
    assert(count.includes('在线 1'), `summary: ${count}`);
    await shot(page, 'centre-gateways');
  });
  await step('enrol another gateway: the secret is shown once with the uplink', async () => {
    await page.click('#gw-enrol-open');
    await page.fill('#gw-id', 'bad id');
    await page.click('#gw-enrol-submit');
    assert((await text(page, '#gw-enrol-error')).includes('网关编号'), 'an id with a space is not refused in the form');
    await page.fill('#gw-id', setup.enrol.id);
    await page.fill('#gw-name', setup.enrol.name);
    await page.fill('#gw-url', 'http://127.0.0.1:9');
    await page.click('#gw-enrol-submit');
    await page.waitForSelector('#gw-secret', { timeout: 10000 });
    const secret = (await text(page, '#gw-secret')).trim();
    assert(secret.length >= 16, `secret too short: ${secret}`);
    const snippet = await text(page, '#gw-snippet');
    for (const want of ['kind: centre', `url: ${BASE}`, `secret: ${secret}`]) assert(snippet.includes(want), `snippet lacks ${want}: ${snippet}`);
    const box = await text(page, '#gw-secret-box');
    assert(box.includes('只显示这一次') && box.includes(`gateway_id: ${setup.enrol.id}`), `secret box: ${box}`);
    await page.click('#gw-copy-snippet');
    const clip = await page.evaluate(() => navigator.clipboard.readText().catch(() => ''));
    assert(clip === '' || clip.includes(secret), 'the copy button copied something else');
    await page.waitForSelector(`${rowSel(setup.enrol.id)}[data-state="unknown"]`, { timeout: 10000 });
    assert((await cell(page, setup.enrol.id, '状态')) === '未知', 'a new gateway is not 未知');
    await shot(page, 'centre-enrolled-secret');
    firstSecret = secret;
    // Shown once: after "saved" and a reload the secret is nowhere on the page.
    await page.click('#gw-secret-done');
    await page.reload();
    await page.waitForSelector(rowSel(setup.enrol.id), { timeout: 10000 });
    const all = await page.evaluate(() => document.body.innerText);
    assert(!all.includes(secret), 'the secret is still on the page after a reload');
  });
  await step('rotate the secret after a confirmation: the new one is shown once', async () => {
    await page.click(`${rowSel(setup.enrol.id)} .gw-rotate`);
    const ask = await text(page, `${rowSel(setup.enrol.id)} .gw-confirm`);
    assert(ask.includes('旧密钥立即失效'), `no confirmation: ${ask}`);
    await page.click(`${rowSel(setup.enrol.id)} .gw-confirm-no`);
    assert(await page.$('#gw-secret') === null, 'cancel still rotated the secret');
    await page.click(`${rowSel(setup.enrol.id)} .gw-rotate`);
    await page.click(`${rowSel(setup.enrol.id)} .gw-confirm-yes`);
    await page.waitForSelector('#gw-secret', { timeout: 10000 });
    const secret = (await text(page, '#gw-secret')).trim();
    assert(secret.length >= 16 && secret !== firstSecret, 'rotation showed no new secret');
    assert((await text(page, '#gw-secret-box')).includes(`网关 ${setup.enrol.id} 的新密钥`), 'not titled as a new secret');
    assert((await text(page, '#gw-snippet')).includes(`secret: ${secret}`), 'snippet lacks the new secret');
    // The test starts the second site with this one: it works and replaced the first.
    fs.writeFileSync(setup.enrol.secret_file, secret);
    await page.click('#gw-secret-done');
  });
  await step('disable and enable again', async () => {
    await page.click(`${rowSel(setup.enrol.id)} .gw-toggle`);
    await page.waitForSelector(`${rowSel(setup.enrol.id)} .gw-disabled`, { timeout: 10000 });
    assert((await text(page, `${rowSel(setup.enrol.id)} .gw-toggle`)) === '启用', 'a disabled gateway offers no 启用');
    const res = await fetch(`${BASE}/api/v1/gateways/${setup.enrol.id}`, { headers: { Authorization: `Bearer ${await apiToken(setup.admin)}` } });
    assert((await res.json()).disabled === true, 'the API does not say disabled');
    await page.click(`${rowSel(setup.enrol.id)} .gw-toggle`);
    await page.waitForSelector(`${rowSel(setup.enrol.id)} .gw-disabled`, { state: 'detached', timeout: 10000 });
  });
  await step('English', async () => {
    await page.click('#lang-switch');
    await page.waitForSelector(`${rowSel(setup.site.id)}`, { timeout: 10000 });
    const head = await text(page, '.page-gateways');
    assert(head.includes('Site gateways') && head.includes('Online'), `English page: ${head.slice(0, 200)}`);
    await shot(page, 'centre-gateways-en');
    await page.click('#lang-switch');
  });
} else if (phase === 'verify') {
  const { page } = await newPage();
  await step('both gateways online', async () => {
    await login(page, setup.admin);
    await gatewaysPage(page);
    await waitState(page, setup.site.id, 'online');
    await waitState(page, setup.second.id, 'online');
    assert((await cell(page, setup.second.id, '设备')) === String(setup.second.devices), 'second gateway device count');
    assert((await text(page, '#gw-count')).includes('在线 2'), 'summary does not count 2 online');
    await shot(page, 'centre-gateways-two-online');
  });
  await step('devices labelled with their gateway, filter by gateway', async () => {
    await page.click('a.nav-link[data-route="devices"]');
    await page.waitForSelector(`tr[data-gateway="${setup.site.id}"]`, { timeout: 10000 });
    const rows = await page.$$eval('.page-devices tbody tr', (trs) => trs.map((tr) => ({ gw: tr.dataset.gateway,
      label: [...tr.children].find((td) => td.dataset.label === '网关')?.innerText.trim() })));
    const mine = rows.filter((r) => r.gw === setup.site.id);
    assert(mine.length === setup.site.devices, `${mine.length} devices of ${setup.site.id}, want ${setup.site.devices}`);
    assert(mine.every((r) => r.label === setup.site.name), `labels: ${JSON.stringify(mine)}`);
    assert(rows.filter((r) => r.gw === setup.second.id).every((r) => r.label === setup.second.name), 'second gateway labels');
    assert(await page.isVisible('#dev-gateway'), 'no gateway filter');
    await page.selectOption('#dev-gateway', setup.second.id);
    const shown = await page.$$eval('.page-devices tbody tr', (trs) => trs.map((tr) => tr.dataset.gateway));
    assert(shown.length === setup.second.devices && shown.every((g) => g === setup.second.id), `filtered: ${shown}`);
    await page.selectOption('#dev-gateway', '');
    await shot(page, 'centre-devices');
  });
  await step('a site sensor shows its live state at the centre', async () => {
    const s = setup.site.sensor;
    const sel = `tr[data-id="${s.id}"]`;
    const before = await page.$eval(sel, (tr) => tr.dataset.health);
    assert(before !== 'online', `sensor ${s.id} already online before any reading`);
    await publish(s.mqtt, { username: s.username, password: s.password, clientId: s.id, topic: s.topic,
      payload: JSON.stringify({ ts: Date.now(), gas: { lel: 2.5, fault: 0 }, signal: -70 }) });
    // The site sends its inventory within seconds of a change; the page reloads its list.
    const deadline = Date.now() + 60000;
    let health = before;
    while (Date.now() < deadline) {
      await page.reload();
      await page.waitForSelector(sel, { timeout: 10000 });
      health = await page.$eval(sel, (tr) => tr.dataset.health);
      if (health === 'online') break;
      await page.waitForTimeout(1000);
    }
    assert(health === 'online', `sensor still ${health} at the centre`);
    const status = await page.$eval(sel, (tr) => [...tr.children].find((td) => td.dataset.label === '状态')?.innerText.trim());
    assert(status.startsWith('在线'), `status cell: ${status}`);
    await shot(page, 'centre-devices-live');
  });
  await step("a site gateway's device page names its gateway", async () => {
    await page.click(`tr[data-id="${setup.site.sensor.id}"]`);
    await page.waitForSelector('.page-devices .detail-head', { timeout: 10000 });
    const facts = await text(page, '.page-devices .facts');
    assert(facts.includes('网关') && facts.includes(setup.site.name), `device facts: ${facts}`);
    assert((await text(page, '.page-devices .detail-head')).includes('在线'), 'the device page does not show the live state');
    await page.waitForSelector('#at-site-note', { timeout: 10000 });
    assert(await page.$('.page-devices .alert-box.error') === null, 'the device page shows an error');
    await shot(page, 'centre-device-detail');
  });
  await step('sites of every gateway, each naming its gateway', async () => {
    await page.click('a.nav-link[data-route="sites"]');
    await page.waitForSelector(`.page-sites tr[data-gateway="${setup.site.id}"]`, { timeout: 10000 });
    const rows = await page.$$eval('.page-sites tbody tr', (trs) => trs.map((tr) => ({ gw: tr.dataset.gateway, text: tr.innerText,
      label: [...tr.children].find((td) => td.dataset.label === '网关')?.innerText.trim() })));
    const a = rows.find((r) => r.gw === setup.site.id);
    const b = rows.find((r) => r.gw === setup.second.id);
    assert(a && a.label === setup.site.name && a.text.includes(setup.site.site_name), `site of ${setup.site.id}: ${JSON.stringify(a)}`);
    assert(a.text.includes(`${setup.site.devices}（在线 1）`), `device count of the site: ${a.text}`);
    assert(b && b.label === setup.second.name, `site of ${setup.second.id}: ${JSON.stringify(b)}`);
    await page.selectOption('#site-gateway', setup.site.id);
    const shown = await page.$$eval('.page-sites tbody tr', (trs) => trs.map((tr) => tr.dataset.gateway));
    assert(shown.length && shown.every((g) => g === setup.site.id), `filtered: ${shown}`);
    await page.selectOption('#site-gateway', '');
    await shot(page, 'centre-sites');
  });
  await step('the wall\'s tree is gateway → site → camera', async () => {
    await page.click('a.nav-link[data-route="wall"]');
    await page.waitForSelector(`.tree .cam[data-camera="${setup.site.camera}"]`, { timeout: 10000 });
    const where = await page.$eval(`.tree .cam[data-camera="${setup.site.camera}"]`, (b) => ({
      site: b.closest('.tree-site')?.querySelector('.tree-site-name')?.innerText || '',
      gateway: b.closest('.tree-gw')?.dataset.gateway || '',
      gatewayName: b.closest('.tree-gw')?.querySelector('summary')?.innerText || '',
    }));
    assert(where.site.includes(setup.site.site_name), `tree site: ${where.site}`);
    assert(where.gateway === setup.site.id && where.gatewayName.includes(setup.site.name), `tree gateway: ${JSON.stringify(where)}`);
    await shot(page, 'centre-wall');
  });
  await step('phone layout', async () => {
    const { page: phone } = await newPage({ width: 390, height: 844 });
    await login(phone, setup.admin);
    await phone.goto(`${BASE}/#/gateways`);
    await phone.waitForSelector(rowSel(setup.site.id), { timeout: 10000 });
    await shot(phone, 'centre-gateways-phone');
  });
  const token = await apiToken(setup.admin);
  const mkUser = async (u) => {
    const res = await fetch(`${BASE}/api/v1/users`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` }, body: JSON.stringify(u) });
    assert(res.status === 201, `create user ${u.username}: ${res.status} ${await res.text()}`);
    return u;
  };
  await step('a maintainer sees the gateways but cannot change them', async () => {
    const m = await mkUser({ username: 'centre-maint', display_name: '运维 王工', role: 'maintainer', password: 'Maint-centre-2026!x' });
    const { ctx, page: p } = await newPage();
    await login(p, m);
    await gatewaysPage(p);
    await p.waitForSelector(rowSel(setup.site.id), { timeout: 10000 });
    assert(await p.$('#gw-enrol-open') === null, 'a maintainer is offered to enrol');
    assert(await p.$('.gw-actions') === null, 'a maintainer is offered actions');
    await ctx.close();
  });
  await step('an officer sees no gateways page and only the devices of his department', async () => {
    const o = await mkUser({ username: 'centre-officer', display_name: '执法 李队', role: 'officer', departments: [setup.site.department], password: 'Officer-centre-2026!x' });
    const { ctx, page: p } = await newPage();
    await login(p, o);
    const nav = await text(p, 'nav.mainnav');
    assert(!nav.includes('站点网关'), `officer's navigation: ${nav}`);
    await p.goto(`${BASE}/#/devices`);
    await p.waitForSelector(`tr[data-gateway="${setup.site.id}"]`, { timeout: 10000 });
    const gws = await p.$$eval('.page-devices tbody tr', (trs) => trs.map((tr) => tr.dataset.gateway));
    assert(gws.length === setup.site.devices && gws.every((g) => g === setup.site.id), `officer sees ${gws}`);
    await shot(p, 'centre-devices-officer');
    await ctx.close();
  });
}

if (phase === 'finish') {
  const { page } = await newPage();
  await login(page, setup.admin);
  await step('a silent gateway turns offline', async () => {
    await gatewaysPage(page);
    await waitState(page, setup.second.id, 'offline');
    assert((await cell(page, setup.second.id, '状态')) === '离线', `state cell: ${await cell(page, setup.second.id, '状态')}`);
    assert((await cell(page, setup.site.id, '状态')) === '在线', 'the other gateway is not online any more');
    assert((await text(page, '#gw-count')).includes('在线 1'), `summary: ${await text(page, '#gw-count')}`);
    await shot(page, 'centre-gateways-offline');
  });
  await step('remove both gateways with confirmation: the page explains enrolment', async () => {
    await page.goto(`${BASE}/#/gateways`);
    for (const id of [setup.second.id, setup.site.id]) {
      await page.waitForSelector(rowSel(id), { timeout: 10000 });
      await page.click(`${rowSel(id)} .gw-remove`);
      assert((await text(page, `${rowSel(id)} .gw-confirm`)).includes(`移除网关 ${id}`), 'no confirmation');
      await page.click(`${rowSel(id)} .gw-confirm-yes`);
      await page.waitForSelector(rowSel(id), { state: 'detached', timeout: 10000 });
    }
    await page.waitForSelector('#gw-intro', { timeout: 10000 });
    const intro = await text(page, '#gw-intro');
    assert(intro.includes('尚未登记站点网关') && intro.includes('offsite gateways add --config'), `intro: ${intro}`);
    assert(await page.isVisible('a.nav-link[data-route="gateways"]'), 'the page left the navigation when empty');
    await shot(page, 'centre-gateways-empty');
  });
  await step('without site gateways the lists have no gateway column or filter', async () => {
    await page.click('a.nav-link[data-route="sites"]');
    await page.waitForSelector('.page-sites .empty, .page-sites table', { timeout: 10000 });
    assert(!(await page.isVisible('#site-gateway')), 'the sites page still offers a gateway filter');
    await page.click('a.nav-link[data-route="devices"]');
    await page.waitForSelector('.page-devices .summary .stat', { timeout: 10000 });
    assert(!(await page.isVisible('#dev-gateway')), 'the devices page still offers a gateway filter');
    const heads = await page.$$eval('.page-devices th', (ths) => ths.map((th) => th.innerText));
    assert(!heads.includes('网关'), `devices columns: ${heads}`);
  });
}

await browser.close();
if (pageErrors.length) console.log(`page errors:\n${pageErrors.join('\n')}`);
fs.writeFileSync(path.join(OUT, `centre-${phase}-results.json`), JSON.stringify({ results, pageErrors }, null, 2));
process.exit(results.every((r) => r.status === 'pass') && !pageErrors.length ? 0 : 1);
