// Browser tests of the Offsite dashboard (api/dashboard). Usage:
//
//   node run.mjs BASE_URL DEMO_JSON
//
// BASE_URL is the gateway (e.g. http://127.0.0.1:8080), DEMO_JSON the demo.json that
// `offsite demo` wrote (docs/contracts.md §2). Environment:
//   OFFSITE_TEST_ARTIFACTS   where screenshots go (default ./artifacts/screens)
//   CHROMIUM                 browser binary (default /usr/bin/chromium)
//   OFFSITE_CAMERA_DOWN_CMD  shell command taking camera {id} off line (e.g. stop its simulator)
//   OFFSITE_CAMERA_UP_CMD    shell command bringing it back
//   OFFSITE_TEST_ONLY        comma list of scenarios to run (login,wall,alerts,chain,scope,offline,devices,hj212,
//                            accounts,occurrences,camstates,clip,recording,soak,screens)
//   OFFSITE_TEST_SOAK_CYCLES how many times the soak scenario fills and clears the wall (default 8)
//   OFFSITE_TEST_READING     {"sensor","metric","value"} forcing the reading that must raise an alert
//   OFFSITE_TEST_STRICT=1    a skipped scenario counts as a failure
// Exit status: 0 when every scenario passed, 1 otherwise.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';
import { execSync } from 'node:child_process';
import { publish } from './mqtt.mjs';
import * as hj212 from './hj212.mjs';

const [base0, demoPath] = process.argv.slice(2);
if (!base0 || !demoPath) {
  console.error('usage: node run.mjs BASE_URL DEMO_JSON');
  process.exit(2);
}
const BASE = base0.replace(/\/+$/, '');
const demo = JSON.parse(fs.readFileSync(demoPath, 'utf8'));
const OUT = process.env.OFFSITE_TEST_ARTIFACTS || path.resolve('artifacts/screens');
const ONLY = (process.env.OFFSITE_TEST_ONLY || '').split(',').filter(Boolean);
const STRICT = process.env.OFFSITE_TEST_STRICT === '1';
fs.mkdirSync(OUT, { recursive: true });

const admin = demo.users.find((u) => u.role === 'admin');
const officer = demo.users.find((u) => u.role === 'officer');
const results = [];
const pageErrors = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required',
    '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns'],
  // playwright gives every launch a fresh, temporary user-data-dir of its own.
});

async function newPage({ lang = 'zh-CN', width = 1920, height = 1080 } = {}) {
  const ctx = await browser.newContext({ viewport: { width, height }, locale: lang, timezoneId: 'Asia/Shanghai',
    hasTouch: width < 800, isMobile: false });
  await ctx.addInitScript((l) => { if (!localStorage.getItem('offsite.lang.set')) { localStorage.setItem('offsite.lang', l); localStorage.setItem('offsite.lang.set', '1'); } }, lang);
  // Count the tones the alert beep plays (WebAudio oscillators).
  await ctx.addInitScript(() => {
    const AC = window.AudioContext;
    if (!AC) return;
    const orig = AC.prototype.createOscillator;
    AC.prototype.createOscillator = function (...a) { window.__oscillators = (window.__oscillators || 0) + 1; return orig.apply(this, a); };
  });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => pageErrors.push(`${page.url()}: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource|ERR_ABORTED/.test(m.text())) pageErrors.push(`console: ${m.text()}`); });
  return { ctx, page };
}

async function login(page, user, base = BASE) {
  await page.goto(`${base}/#/login`);
  await page.fill('#login-username', user.username);
  await page.fill('#login-password', user.password);
  await page.click('#login-submit');
  await page.waitForSelector('header.topbar', { timeout: 10000 });
}

async function apiToken(user) {
  const res = await fetch(`${BASE}/api/v1/auth/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: user.username, password: user.password }) });
  if (!res.ok) throw new Error(`login ${user.username}: ${res.status}`);
  return (await res.json()).token;
}

async function apiGet(token, p) {
  const res = await fetch(`${BASE}/api/v1/${p}`, { headers: { Authorization: `Bearer ${token}` } });
  if (!res.ok) return null;
  return res.json();
}

async function scenario(name, fn) {
  if (ONLY.length && !ONLY.includes(name)) return;
  const t0 = Date.now();
  try {
    const r = await fn();
    if (r && r.skip) { results.push({ name, status: 'skip', msg: r.skip }); console.log(`SKIP ${name}: ${r.skip}`); return; }
    results.push({ name, status: 'pass', ms: Date.now() - t0, msg: r?.msg || '' });
    console.log(`PASS ${name} (${Date.now() - t0} ms)${r?.msg ? ` ${r.msg}` : ''}`);
  } catch (e) {
    results.push({ name, status: 'fail', msg: e.message });
    console.log(`FAIL ${name}: ${e.message}`);
  }
}

function assert(c, msg) { if (!c) throw new Error(msg); }

// Put the first n cameras on the wall through the UI: choose the layout, then for each tile
// select it and click a camera in the tree.
// A camera the demo reboots on purpose every few minutes (demo.json `scenario`) is left for
// last, so a scenario that waits for pictures does not meet its planned outage.
const REBOOTS = new Set((demo.cameras || []).filter((c) => c.scenario === 'reboots').map((c) => c.id));

async function fillWall(page, n, base = BASE) {
  await page.goto(`${base}/#/wall`);
  await page.waitForSelector('.tree .cam', { timeout: 10000 });
  await page.click(`[data-layout="${n <= 1 ? 1 : n <= 4 ? 4 : n <= 9 ? 9 : 16}"]`);
  const all = await page.$$eval('.tree .cam', (els) => els.map((e) => e.dataset.camera));
  const cams = [...all.filter((id) => !REBOOTS.has(id)), ...all.filter((id) => REBOOTS.has(id))];
  assert(cams.length >= n, `only ${cams.length} cameras in the tree, need ${n}`);
  for (let i = 0; i < n; i++) {
    await page.click(`.tile[data-index="${i}"]`, { position: { x: 30, y: 60 } });
    await page.click(`.tree .cam[data-camera="${cams[i]}"]`);
  }
  return cams.slice(0, n);
}

async function waitPlaying(page, ids, timeout = 30000) {
  await page.waitForFunction((ids) => ids.every((id) => {
    const t = document.querySelector(`.tile[data-camera="${CSS.escape(id)}"]`);
    const v = t?.querySelector('video');
    return t && t.dataset.state === 'playing' && Number(t.dataset.frames) > 0 && v && v.videoWidth > 0;
  }), ids, { timeout, polling: 250 });
}

// waitAlertsList waits for the alerts table (or its empty note) and says so plainly when the
// gateway does not serve the alerts API.
async function waitAlertsList(page) {
  await page.waitForSelector('.alerts-body table, .alerts-body .empty, .alerts-body [data-unavailable], .alerts-body .alert-box.error', { timeout: 15000 });
  if (await page.$('.alerts-body [data-unavailable]')) throw new Error('GET /api/v1/alerts is not available on this gateway');
  const err = await page.$('.alerts-body .alert-box.error');
  if (err) throw new Error(`the alerts page shows an error: ${await err.textContent()}`);
}

// ---- scenarios ----

let adminToken = '';
await scenario('login', async () => {
  const { ctx, page } = await newPage();
  await page.goto(`${BASE}/#/login`);
  await page.fill('#login-username', admin.username);
  await page.fill('#login-password', 'definitely-wrong');
  await page.click('#login-submit');
  await page.waitForFunction(() => document.querySelector('.form-error')?.textContent.trim().length > 0, null, { timeout: 5000 });
  await login(page, admin);
  const user = await page.textContent('.who');
  assert(user && user.length > 0, 'no user shown in the header');
  await ctx.close();
  adminToken = await apiToken(admin);
});

await scenario('wall', async () => {
  const { ctx, page } = await newPage();
  await login(page, admin);
  const ids = await fillWall(page, 4);
  try { await waitPlaying(page, ids); } catch {
    const st = await page.$$eval('.tile', (ts) => ts.map((t) => `${t.dataset.camera}:${t.dataset.state}:${t.dataset.frames}:${t.querySelector('.tile-reason')?.textContent || ''}`));
    throw new Error(`not every tile decodes frames: ${st.join(' | ')}`);
  }
  // The layout is remembered for this user.
  await page.reload();
  await page.waitForSelector('.tile[data-camera]');
  const again = await page.$$eval('.tile[data-camera]', (ts) => ts.map((t) => t.dataset.camera));
  assert(ids.every((id) => again.includes(id)), 'layout not remembered after reload');
  await waitPlaying(page, ids);
  await ctx.close();
  return { msg: `${ids.length} tiles decoding` };
});

// The wall's layout is kept at the gateway per user: a browser that never saw it (fresh
// storage, another machine) gets it on login.
await scenario('wall-layout', async () => {
  const a = await newPage();
  await login(a.page, admin);
  const ids = await fillWall(a.page, 4);
  const deadline = Date.now() + 15000;
  let kept = null;
  while (Date.now() < deadline) {
    kept = await apiGet(adminToken || await apiToken(admin), 'auth/me/preferences/wall');
    if (kept && kept.layout === 4 && ids.every((id, i) => kept.tiles?.[i] === id)) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert(kept && ids.every((id, i) => kept.tiles?.[i] === id), `layout not kept at the gateway: ${JSON.stringify(kept)}`);
  await a.ctx.close();
  const b = await newPage();
  await login(b.page, admin);
  await b.page.goto(`${BASE}/#/wall`);
  await b.page.waitForFunction((ids) => ids.every((id, i) => document.querySelector(`.tile[data-index="${i}"]`)?.dataset.camera === id), ids, { timeout: 15000 });
  await b.ctx.close();
  return { msg: `layout of ${ids.length} tiles restored in a fresh browser` };
});

// Tour mode: the tiles cycle through the cameras every N seconds, or hold on a tile whose
// camera has an open alert; stopping puts the saved layout back.
await scenario('wall-tour', async () => {
  const { ctx, page } = await newPage();
  await login(page, admin);
  await page.goto(`${BASE}/#/wall`);
  await page.waitForSelector('.tree .cam', { timeout: 10000 });
  await page.click('[data-layout="1"]');
  const saved = await page.$eval('.tile[data-index="0"]', (e) => e.dataset.camera || '');
  const cams = await page.$$eval('.tree .cam', (els) => els.map((e) => e.dataset.camera));
  await page.selectOption('#wall-tour-secs', '10');
  await page.click('#wall-tour');
  await page.waitForFunction(() => document.querySelector('#wall-tour-status')?.dataset.page === '1', null, { timeout: 5000 });
  const first = await page.$eval('.tile[data-index="0"]', (e) => e.dataset.camera || '');
  assert(cams.includes(first), `tour shows ${first}, not one of the tree's cameras`);
  await page.waitForFunction(() => { const s = document.querySelector('#wall-tour-status'); return s?.dataset.page === '2' || s?.dataset.paused === '1'; }, null, { timeout: 30000, polling: 250 });
  const paused = await page.$eval('#wall-tour-status', (e) => e.dataset.paused === '1');
  let msg;
  if (paused) {
    const alerts = await apiGet(adminToken || await apiToken(admin), 'alerts?limit=1000');
    const open = (alerts?.alerts || []).filter((a) => a.state !== 'closed').map((a) => a.device_id);
    assert(open.includes(first), `tour paused on ${first}, which has no open alert`);
    msg = `held on ${first} (open alert)`;
  } else {
    const second = await page.$eval('.tile[data-index="0"]', (e) => e.dataset.camera || '');
    assert(second !== first || cams.length === 1, 'tour did not move to the next camera');
    msg = `${first} → ${second}`;
  }
  await page.click('#wall-tour');
  await page.waitForFunction((c) => (document.querySelector('.tile[data-index="0"]')?.dataset.camera || '') === c, saved, { timeout: 5000 });
  await page.click('[data-layout="4"]');
  await ctx.close();
  return { msg };
});

// thresholdReading picks, from a sensor's profile, a rule that fires on a single reading
// (kind threshold, a comparison) and a value past it that is still inside the metric's valid
// range (readings outside it are quarantined, not evaluated).
function thresholdReading(profile, sensor) {
  if (profile?.decoder && profile.decoder.kind !== 'json') return null; // binary payloads: not built here
  const ops = ['>', '>=', '<', '<='];
  // a single reading must be enough: no duration ("for") to wait out
  const rules = (profile?.rules || []).filter((r) => r.kind === 'threshold' && r.metric && typeof r.value === 'number' && ops.includes(r.op || '>') && !r.for);
  const sevRank = { critical: 0, major: 1, minor: 2, info: 3 };
  rules.sort((a, b) => (sevRank[a.severity] ?? 9) - (sevRank[b.severity] ?? 9));
  const rule = rules.find((r) => !sensor.metrics || sensor.metrics.includes(r.metric)) || rules[0];
  if (!rule) return null;
  const m = (profile.metrics || []).find((x) => x.name === rule.metric) || {};
  const up = !rule.op || rule.op.startsWith('>');
  const margin = Math.max(Math.abs(rule.value) * 0.5, 5);
  let v = up ? rule.value + margin : rule.value - margin;
  if (typeof m.max === 'number' && v > m.max) v = (rule.value + m.max) / 2;
  if (typeof m.min === 'number' && v < m.min) v = (rule.value + m.min) / 2;
  return { metric: rule.metric, value: Math.round(v * 100) / 100, rule: rule.id, severity: rule.severity };
}

function setPath(obj, p, v) {
  const parts = p.split('.');
  let o = obj;
  for (const k of parts.slice(0, -1)) o = (o[k] ??= {});
  o[parts[parts.length - 1]] = v;
}

// payloadFor builds the JSON payload the sensor's profile decodes into reading (docs/contracts.md
// §4: generic-json takes {"ts", "values": {…}}; other JSON profiles name a path per metric).
function payloadFor(profile, reading) {
  const dec = profile?.decoder || { kind: 'json', time_path: 'ts', values_path: 'values', open_metrics: true };
  const out = {};
  if (dec.time_path) setPath(out, dec.time_path, new Date().toISOString());
  const fields = dec.fields || [];
  const target = fields.find((f) => f.metric === reading.metric && f.path);
  for (const f of fields) {
    if (!f.path || f.optional || f === target) continue;
    const m = (profile.metrics || []).find((x) => x.name === f.metric) || {};
    setPath(out, f.path, typeof m.min === 'number' && m.min > 0 ? m.min : 0);
  }
  if (target) {
    const raw = (reading.value - (target.add || 0)) / (target.scale || 1);
    setPath(out, target.path, raw);
  } else {
    setPath(out, dec.values_path || 'values', { [reading.metric]: reading.value });
  }
  return JSON.stringify(out);
}

async function pickSensorReading() {
  const token = adminToken || await apiToken(admin);
  if (process.env.OFFSITE_TEST_READING) {
    const r = JSON.parse(process.env.OFFSITE_TEST_READING);
    const sensor = demo.sensors.find((s) => !r.sensor || s.id === r.sensor);
    return { sensor, reading: r, profile: await apiGet(token, `profiles/${encodeURIComponent(sensor.profile)}`) };
  }
  for (const s of (demo.sensors || []).filter((x) => x.protocol !== 'hj212')) { // MQTT sensors only
    const profile = await apiGet(token, `profiles/${encodeURIComponent(s.profile)}`);
    const reading = thresholdReading(profile, s);
    if (reading) return { sensor: s, reading, profile };
  }
  throw new Error('no demo sensor has a profile with a single-reading threshold rule; set OFFSITE_TEST_READING');
}

// A sensor names the broker of its site gateway (demo city); older demo.json files have one.
function mqttURL(sensor) {
  if (sensor && sensor.mqtt) return sensor.mqtt;
  if (demo.mqtt) return demo.mqtt;
  return `tcp://${new URL(BASE).hostname}:1883`;
}

async function publishReading(sensor, reading, profile) {
  await publish(mqttURL(sensor), { username: sensor.mqtt_username, password: sensor.mqtt_password, topic: sensor.topic,
    payload: payloadFor(profile, reading), clientId: sensor.mqtt_username });
}

let newAlertId = '';
await scenario('alerts', async () => {
  const { ctx, page } = await newPage();
  await login(page, admin);
  await page.goto(`${BASE}/#/alerts`);
  await waitAlertsList(page);
  await page.waitForFunction(() => document.querySelector('.live-dot.live'), null, { timeout: 10000 });
  const before = await page.$$eval('tr.alert-row', (rs) => rs.map((r) => r.dataset.id));
  const { sensor, reading, profile } = await pickSensorReading();
  await publishReading(sensor, reading, profile);
  const t0 = Date.now();
  const h = await page.waitForFunction((before) => {
    const r = [...document.querySelectorAll('tr.alert-row')].find((x) => !before.includes(x.dataset.id));
    return r ? r.dataset.id : null;
  }, before, { timeout: 10000, polling: 50 });
  const ms = Date.now() - t0;
  newAlertId = await h.jsonValue();
  assert(ms <= 2000, `the alert showed after ${ms} ms (limit 2000 ms)`);
  const sev = await page.getAttribute(`tr.alert-row[data-id="${newAlertId}"]`, 'data-severity');
  let extra = '';
  if (sev === 'major' || sev === 'critical') {
    // A new major/critical alert shows on the nav badge and beeps.
    await page.waitForFunction(() => { const b = document.querySelector('#alert-badge'); return b && !b.hidden && Number(b.textContent) > 0; }, null, { timeout: 3000 })
      .catch(() => { throw new Error(`no badge for the new ${sev} alert`); });
    const beeps = await page.evaluate(() => window.__oscillators || 0);
    assert(beeps > 0, `no beep for the new ${sev} alert`);
    extra = `, badge and ${beeps} tones`;
  }
  await ctx.close();
  return { msg: `${sensor.id} ${reading.metric}=${reading.value} → ${sev} alert ${newAlertId} in ${ms} ms${extra}` };
});

await scenario('chain', async () => {
  if (!newAlertId) {
    const list = await apiGet(adminToken, 'alerts?state=opened');
    const items = Array.isArray(list) ? list : list?.items || list?.alerts || [];
    newAlertId = items[0]?.id;
  }
  if (!newAlertId) return { skip: 'no open alert to work on' };
  const { ctx, page } = await newPage();
  await login(page, admin);
  await page.goto(`${BASE}/#/alerts/${encodeURIComponent(newAlertId)}`);
  await page.waitForSelector('#alert-timeline');
  const count = () => page.$$eval('#alert-timeline li.tl-item', (x) => x.length);
  // 认领 → (处办, when the gateway wants it before the feedback) → 反馈 → 办结.
  for (const act of ['claim', 'handle', 'feedback', 'close']) {
    const n0 = await count();
    if (act === 'handle') {
      const next = await page.waitForSelector('#action-handle, #action-feedback', { timeout: 10000 });
      if (await next.getAttribute('id') !== 'action-handle') continue;
    }
    await page.waitForSelector(`#action-${act}`, { timeout: 10000 });
    await page.fill(`#note-${act}`, `browser test: ${act}`);
    if (act === 'feedback') await page.selectOption('#feedback-outcome', 'rectify_ordered');
    await page.click(`#action-${act}`);
    await page.waitForFunction((n0) => document.querySelectorAll('#alert-timeline li.tl-item').length > n0, n0, { timeout: 10000 });
    if (act !== 'handle') {
      // Other steps (the alarm clearing, an escalation) can arrive live meanwhile: wait for this one's note.
      await page.waitForFunction((note) => document.querySelector('#alert-timeline')?.textContent.includes(note),
        `browser test: ${act}`, { timeout: 10000 });
    }
  }
  const text = await page.textContent('#alert-timeline');
  for (const note of ['claim', 'feedback', 'close']) assert(text.includes(`browser test: ${note}`), `the timeline does not show the ${note} note`);
  const notes = await page.$$eval('#alert-timeline .tl-note', (x) => x.map((e) => e.textContent));
  const types = await page.$$eval('#alert-timeline li.tl-item', (x) => x.map((e) => e.dataset.type));
  assert(types.some((t) => /claim/.test(t)) && types.some((t) => /fed_back|feedback/.test(t)) && types.some((t) => /close/.test(t)),
    `timeline lacks claim/feedback/close: ${types.join(', ')}`);
  assert(await page.$('#action-claim') === null, 'a closed alert still offers claim');
  await ctx.close();
  return { msg: `timeline: ${types.join(' → ')}${notes.length ? '' : ' (no notes shown)'}` };
});

await scenario('scope', async () => {
  if (!officer) return { skip: 'demo.json has no officer' };
  const tok = await apiToken(officer);
  const me = await apiGet(tok, 'auth/me');
  const depts = officer.departments || me?.departments || me?.user?.departments || [];
  if (!depts.length) return { skip: 'the officer has no department limit' };
  // Make sure there is something to hide and something to show: an alert of the officer's
  // department and one of another department (a reading over the limit for a sensor of each).
  const admTok = adminToken || await apiToken(admin);
  const sitesAll = await apiGet(admTok, 'sites');
  const siteItems = (x) => (Array.isArray(x) ? x : x?.sites || x?.items || []);
  const deptOf = new Map(siteItems(sitesAll).map((x) => [x.id, x.department]));
  assert(deptOf.size > 0, 'GET /sites as admin listed no sites');
  const alertsOf = async (token) => {
    const l = await apiGet(token, 'alerts?limit=500');
    return Array.isArray(l) ? l : l?.items || l?.alerts || [];
  };
  const published = [];
  for (const own of [true, false]) {
    const have = (await alertsOf(admTok)).some((a) => a.department && depts.includes(a.department) === own);
    if (have) continue;
    const candidates = (demo.sensors || []).filter((sn) => sn.protocol !== 'hj212' && deptOf.get(sn.site) && depts.includes(deptOf.get(sn.site)) === own);
    let done = false;
    for (const sn of candidates) {
      const profile = await apiGet(admTok, `profiles/${encodeURIComponent(sn.profile)}`);
      const reading = thresholdReading(profile, sn);
      // a rule may hand its alarm to another department (elevators go to market supervision)
      const rule = (profile?.rules || []).find((r) => r.id === reading?.rule);
      if (!reading || (rule?.department && depts.includes(rule.department) !== own)) continue;
      await publishReading(sn, reading, profile);
      published.push(`${sn.id} ${reading.metric}=${reading.value} over MQTT`);
      done = true;
      break;
    }
    if (!done && candidates.length) {
      // No sensor there alarms on a single reading (construction dust rules need ten minutes):
      // report the event as an outside system would, through POST /events.
      const sn = candidates[0];
      const res = await fetch(`${BASE}/api/v1/events`, { method: 'POST', headers: { Authorization: `Bearer ${admTok}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ type: 'sensor.threshold', severity: 'major', state: 'active', alarm_key: `browsertest/scope/${sn.id}/${Date.now()}`,
          occurred_at: new Date().toISOString(), device: { id: sn.id }, message: '浏览器测试：数据范围检查', reading: { metric: 'pm10', value: 182, limit: 150 } }) });
      assert(res.status === 201, `POST /events for ${sn.id}: ${res.status} ${await res.text()}`);
      published.push(`${sn.id} via POST /events`);
    }
  }
  const deadline = Date.now() + 15000;
  let all = [];
  for (;;) {
    all = await alertsOf(admTok);
    const ownN = all.filter((a) => depts.includes(a.department)).length;
    const foreignN = all.filter((a) => a.department && !depts.includes(a.department)).length;
    if ((ownN > 0 && foreignN > 0) || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const foreignAll = all.filter((a) => a.department && !depts.includes(a.department));
  const ownAll = all.filter((a) => depts.includes(a.department));
  assert(ownAll.length > 0 && foreignAll.length > 0,
    `could not get alerts of both the officer's and another department (own ${ownAll.length}, other ${foreignAll.length}; published ${published.join(', ') || 'nothing'})`);

  const { ctx, page } = await newPage();
  await login(page, officer);
  await page.goto(`${BASE}/#/alerts`);
  await page.selectOption('#filter-state', '');
  await waitAlertsList(page);
  await page.waitForFunction(() => document.querySelectorAll('tr.alert-row').length > 0, null, { timeout: 10000 })
    .catch(() => { throw new Error(`the officer sees none of the ${ownAll.length} alerts of ${depts.join(',')}`); });
  const seen = await page.$$eval('tr.alert-row', (rs) => rs.map((r) => ({ id: r.dataset.id, d: r.dataset.department })));
  const foreign = seen.filter((x) => x.d && !depts.includes(x.d));
  assert(foreign.length === 0, `officer of ${depts.join(',')} sees alerts of ${[...new Set(foreign.map((x) => x.d))].join(', ')}`);
  const hidden = foreignAll.filter((a) => seen.some((x) => x.id === a.id));
  assert(hidden.length === 0, `officer sees foreign alert ${hidden.map((a) => a.id).join(', ')}`);
  // The API answers the same: another department's alert is not found for the officer.
  const foreignViaAPI = (await alertsOf(tok)).filter((a) => !depts.includes(a.department));
  assert(foreignViaAPI.length === 0, `the API lists ${foreignViaAPI.length} foreign alerts to the officer`);
  // And the wall tree only lists cameras of the officer's sites.
  const sites = await apiGet(tok, 'sites');
  const siteList = siteItems(sites);
  assert(siteList.length > 0 && siteList.length < deptOf.size, `officer sees ${siteList.length} of ${deptOf.size} sites`);
  const bad = siteList.filter((x) => !depts.includes(x.department));
  assert(bad.length === 0, `officer sees sites of other departments: ${bad.map((x) => x.id).join(', ')}`);
  await ctx.close();
  return { msg: `officer sees ${seen.length} alerts and ${siteList.length} of ${deptOf.size} sites, all of ${depts.join(', ')}; ${foreignAll.length} alerts of other departments hidden${published.length ? `; published ${published.join(', ')}` : ''}` };
});

function cameraCommand(kind, id) {
  const env = process.env[kind === 'down' ? 'OFFSITE_CAMERA_DOWN_CMD' : 'OFFSITE_CAMERA_UP_CMD'];
  if (env) return () => execSync(env.replaceAll('{id}', id), { stdio: 'inherit', shell: '/bin/sh' });
  if (demo.dev_camera_control) {
    const url = demo.dev_camera_control.replace('{id}', encodeURIComponent(id)).replace('{action}', kind);
    return () => fetch(url, { method: 'POST' });
  }
  return null;
}

await scenario('offline', async () => {
  const cam = demo.cameras?.[0];
  if (!cam) return { skip: 'no camera' };
  const down = cameraCommand('down', cam.id); const up = cameraCommand('up', cam.id);
  if (!down || !up) return { skip: 'set OFFSITE_CAMERA_DOWN_CMD and OFFSITE_CAMERA_UP_CMD to take a camera off line' };
  const { ctx, page } = await newPage();
  await login(page, admin);
  await fillWall(page, 1);
  await page.click(`.tile[data-index="0"]`, { position: { x: 30, y: 60 } });
  await page.click(`.tree .cam[data-camera="${cam.id}"]`);
  await waitPlaying(page, [cam.id]);
  await down();
  const sel = `.tile[data-camera="${cam.id}"]`;
  try {
    await page.waitForFunction((sel) => { const t = document.querySelector(sel); return t?.dataset.state === 'offline' && t.querySelector('.tile-reason')?.textContent.trim(); }, sel, { timeout: 30000, polling: 250 });
  } finally { /* bring it back even when the check failed */ }
  const reason = await page.textContent(`${sel} .tile-reason`);
  await page.screenshot({ path: path.join(OUT, 'zh-CN-1920x1080-wall-offline.png') });
  await up();
  await waitPlaying(page, [cam.id], 90000);
  await ctx.close();
  return { msg: `reason shown: "${reason.trim()}", recovered` };
});

// Cascade: a site camera watched at the centre; its site gateway dies (held down by the
// demo), the tile says the site gateway cannot be reached; the gateway comes back and the
// same tile plays again, without a reload.
await scenario('site-down', async () => {
  const cam = (demo.cameras || []).find((c) => c.gateway && c.id === 'cam-hall-queue') || (demo.cameras || []).find((c) => c.gateway);
  if (!cam || !demo.dev_camera_control) return { skip: 'no site gateway camera or no demo control' };
  const ctl = (action) => fetch(demo.dev_camera_control.replace('/cameras/{id}/{action}', `/nodes/${encodeURIComponent(cam.gateway)}/${action}`), { method: 'POST' });
  const { ctx, page } = await newPage();
  await login(page, admin);
  await fillWall(page, 1);
  // The centre's tree is gateway → site → camera: the camera sits under its site gateway.
  const under = await page.$eval(`.tree .cam[data-camera="${cam.id}"]`, (b) => b.closest('.tree-gw')?.dataset.gateway || '');
  assert(under === cam.gateway, `the tree lists ${cam.id} under gateway "${under}", not ${cam.gateway}`);
  await page.click(`.tile[data-index="0"]`, { position: { x: 30, y: 60 } });
  await page.click(`.tree .cam[data-camera="${cam.id}"]`);
  await waitPlaying(page, [cam.id]);
  const sel = `.tile[data-camera="${cam.id}"]`;
  const res = await ctl('down');
  assert(res.status === 204, `taking ${cam.gateway} down: ${res.status}`);
  let reason = '';
  try {
    await page.waitForFunction((sel) => /站点网关无法连接/.test(document.querySelector(sel)?.querySelector('.tile-reason')?.textContent || ''), sel, { timeout: 60000, polling: 250 })
      .catch(async (e) => {
        // Say what the tile and the centre showed instead, so a failure can be read from the log.
        const tile = await page.$eval(sel, (t) => ({ state: t.dataset.state, reason: t.querySelector('.tile-reason')?.textContent })).catch(() => 'no tile');
        const api = await apiGet(adminToken || await apiToken(admin), `cameras/${encodeURIComponent(cam.id)}`).catch((x) => String(x));
        throw new Error(`${e.message}; tile ${JSON.stringify(tile)}; centre says ${JSON.stringify(api)}`);
      });
    reason = await page.textContent(`${sel} .tile-reason`);
    await page.screenshot({ path: path.join(OUT, 'zh-CN-1920x1080-wall-site-down.png') });
  } finally { await ctl('up'); }
  await waitPlaying(page, [cam.id], 120000);
  await ctx.close();
  return { msg: `${cam.gateway} down: "${reason.trim()}"; back and playing without a reload` };
});

// Devices: a CSV with a bad row is refused with the row shown; a maintenance record is added.
await scenario('devices', async () => {
  const { ctx, page } = await newPage();
  await login(page, admin);
  await page.goto(`${BASE}/#/devices`);
  await page.waitForSelector('.summary .stat');
  const csv = 'site_id,site_name,uscc,region_code,department,device_id,kind,name,profile\n'
    + 'test-site-x,测试站点,123456,410702,市市场监督管理局,test-dev-x,sensor,测试传感器,generic-json\n';
  await page.setInputFiles('#import-file', { name: 'bad.csv', mimeType: 'text/csv', buffer: Buffer.from(csv) });
  await page.waitForSelector('#import-result .alert-box', { timeout: 10000 });
  const rows = await page.$$eval('#import-result tbody tr', (r) => r.map((x) => x.textContent));
  assert(await page.$('#import-result .alert-box.error'), 'a CSV with an invalid credit code was accepted');
  assert(rows.length > 0, 'the import error shows no rows');
  await page.screenshot({ path: path.join(OUT, 'zh-CN-1920x1080-devices-import-errors.png') });
  const sensor = demo.sensors?.[0];
  if (sensor) {
    // The maintenance log is kept where the device is registered: at a centre, a site
    // gateway's devices are read-only, so the note goes in at that gateway's dashboard.
    const gw = (demo.gateways || []).find((g) => g.id === sensor.gateway);
    let base = BASE;
    if (gw) {
      base = gw.http;
      await login(page, gw.users.find((u) => u.role === 'admin'), base);
    }
    await page.goto(`${base}/#/devices/${encodeURIComponent(sensor.id)}`);
    await page.waitForSelector('#maint-note', { timeout: 10000 });
    const note = `browser test ${Date.now()}`;
    await page.fill('#maint-note', note);
    await page.click('.maint-form button[type=submit]');
    await page.waitForFunction((n) => document.querySelector('.detail')?.textContent.includes(n), note, { timeout: 10000 });
  }
  await ctx.close();
  return { msg: `${rows.length} row error(s) shown: ${rows[0]?.slice(0, 80)}` };
});

// An HJ 212 station's maintenance period (data flag M) is shaded on its readings chart, with a
// legend, in Chinese and in English.
await scenario('hj212', async () => {
  const st = (demo.sensors || []).find((s) => s.protocol === 'hj212');
  if (!demo.hj212 || !st) return { skip: 'demo.json has no HJ 212 station' };
  const now = Date.now();
  const segs = [];
  for (let i = 0; i < 6; i++) {
    const at = new Date(now - (6 - i) * 60e3);
    const flag = i >= 2 && i < 4 ? 'M' : 'N';
    segs.push(`QN=${hj212.beijing(at)}${String(100 + i)};ST=32;CN=2051;PW=${st.pw};MN=${st.mn};Flag=5;CP=&&DataTime=${hj212.beijing(at)};`
      + `w01018-Avg=${30 + i},w01018-Flag=${flag}&&`);
  }
  await hj212.send(demo.hj212, segs);
  const shots = [];
  for (const lang of ['zh-CN', 'en']) {
    const { ctx, page } = await newPage({ lang });
    // Readings are kept at the station's site gateway; a centre shows its events.
    const gw = (demo.gateways || []).find((g) => g.id === st.gateway);
    const base = gw ? gw.http : BASE;
    await login(page, gw ? gw.users.find((u) => u.role === 'admin') : admin, base);
    await page.goto(`${base}/#/devices/${encodeURIComponent(st.id)}`);
    await page.waitForSelector('.chart-legend .legend-M', { timeout: 15000 });
    const legend = await page.textContent('.chart-legend');
    assert(legend.includes(lang === 'en' ? 'Maintenance' : '维护'), `legend in ${lang}: ${legend}`);
    assert(await page.$('.chart rect.band-M'), 'no shaded maintenance band on the chart');
    const file = `${lang}-1920x1080-hj212-chart.png`;
    await page.screenshot({ path: path.join(OUT, file) });
    shots.push(file);
    await ctx.close();
  }
  return { msg: `M period shaded; ${shots.join(', ')}` };
});

// The wall must not leak: put cameras up and take them down many times, then count the live
// peer connections and weigh the JS heap after a garbage collection.
await scenario('soak', async () => {
  const cycles = Number(process.env.OFFSITE_TEST_SOAK_CYCLES || 8);
  const { ctx, page } = await newPage();
  await ctx.addInitScript(() => {
    const Orig = window.RTCPeerConnection;
    window.__pcLive = 0;
    window.RTCPeerConnection = class extends Orig {
      constructor(...a) { super(...a); window.__pcLive++; this.__closed = false; }
      close() { if (!this.__closed) { this.__closed = true; window.__pcLive--; } return super.close(); }
    };
  });
  await login(page, admin);
  const cdp = await ctx.newCDPSession(page);
  const heap = async () => {
    await cdp.send('HeapProfiler.collectGarbage');
    const { metrics } = await cdp.send('Performance.getMetrics');
    return metrics.find((m) => m.name === 'JSHeapUsedSize').value;
  };
  await cdp.send('Performance.enable');
  const n = Math.min(4, demo.cameras.length);
  const live = () => page.evaluate(() => window.__pcLive);
  const sessions = async () => {
    if (!demo.dev_camera_control) return 0;
    return (await (await fetch(`${new URL(demo.dev_camera_control).origin}/_dev/sessions`)).json()).whep_sessions;
  };
  const sessions0 = await sessions(); // earlier scenarios' pages were closed without a goodbye
  let base = 0;
  for (let c = 0; c < cycles; c++) {
    const ids = await fillWall(page, n);
    if (c === 0) await waitPlaying(page, ids);
    await page.waitForTimeout(800);
    await page.click('[data-layout="16"]');
    await page.click('[data-layout="1"]');
    await page.click('[data-layout="4"]');
    await page.waitForTimeout(300);
    await page.click('#wall-clear');
    await page.waitForFunction(() => window.__pcLive === 0, null, { timeout: 5000 })
      .catch(async () => { throw new Error(`${await live()} peer connections still open after clearing the wall`); });
    if (c === 1) base = await heap();
  }
  const ids = await fillWall(page, n);
  await waitPlaying(page, ids);
  const open = await live();
  assert(open === n, `${open} peer connections for ${n} tiles`);
  await page.click('#wall-clear');
  await page.waitForTimeout(500);
  const end = await heap();
  if (demo.dev_camera_control) {
    // The demo's camera control counts WHEP sessions: every DELETE must have arrived.
    const left = await sessions();
    assert(left <= sessions0, `${left} WHEP sessions on the server after clearing the wall (${sessions0} before)`);
  }
  const growth = end - base;
  assert(growth < Math.max(4e6, base * 0.3), `JS heap grew from ${(base / 1e6).toFixed(1)} MB to ${(end / 1e6).toFixed(1)} MB over ${cycles} cycles`);
  await ctx.close();
  return { msg: `${cycles} cycles, heap ${(base / 1e6).toFixed(1)} → ${(end / 1e6).toFixed(1)} MB, peer connections back to 0` };
});

// Accounts (issue 16): the admin creates an officer with a department, sees the generated
// password once, resets it, disables and enables the account, and reads the audit log filtered
// by user; the new officer changes his own password and logs in with it; on a phone the
// officer lands on his alerts.
await scenario('accounts', async () => {
  const { ctx, page } = await newPage();
  await login(page, admin);
  await page.goto(`${BASE}/#/users`);
  await page.waitForSelector(`tr[data-username="${admin.username}"]`, { timeout: 10000 });
  const name = `bt${Date.now().toString(36)}`;
  await page.click('#user-new');
  await page.fill('#user-username', name);
  await page.fill('#user-display', '浏览器测试');
  await page.selectOption('#user-role', 'officer');
  await page.fill('#user-departments', '市住房和城乡建设局');
  await page.click('#user-save');
  await page.waitForSelector(`tr[data-username="${name}"]`, { timeout: 10000 });
  const shown = (await page.textContent('#user-shown-password code.secret')).trim();
  assert(shown.length >= 10, `no generated password shown (${shown})`);
  await page.screenshot({ path: path.join(OUT, 'zh-CN-1920x1080-users.png') });
  const row = `tr[data-username="${name}"]`;
  // Reset the password to one the test knows.
  const pw1 = `Reset-Pw-${Date.now() % 100000}-9x`;
  await page.click(`${row} [data-action="reset"]`);
  await page.fill('#reset-password', pw1);
  await page.click('#reset-save');
  await page.waitForSelector('#reset-form', { state: 'detached', timeout: 10000 });
  // Disable: the login is refused; enable again.
  await page.click(`${row} [data-action="toggle"]`);
  await page.waitForSelector(`${row}.disabled`, { timeout: 10000 });
  const refused = await fetch(`${BASE}/api/v1/auth/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: name, password: pw1 }) });
  assert(refused.status === 401 || refused.status === 403, `a disabled user logged in: ${refused.status}`);
  await page.click(`${row} [data-action="toggle"]`);
  await page.waitForSelector(`${row}:not(.disabled)`, { timeout: 10000 });
  // The audit log, filtered by the admin's name, shows what he just did.
  await page.goto(`${BASE}/#/audit`);
  await page.fill('#audit-actor', admin.username);
  await page.click('#audit-apply');
  // Wait for the filtered answer, not the unfiltered list shown before it.
  await page.waitForFunction((who) => {
    const rows = [...document.querySelectorAll('tr[data-actor]')];
    return rows.some((r) => r.dataset.action === 'user.create') && rows.every((r) => r.dataset.actor === who);
  }, admin.username, { timeout: 10000 }).catch(() => {});
  const actors = await page.$$eval('tr[data-actor]', (r) => [...new Set(r.map((x) => x.dataset.actor))]);
  assert(actors.length === 1 && actors[0] === admin.username, `audit filtered by ${admin.username} shows ${actors.join(', ')}`);
  await page.screenshot({ path: path.join(OUT, 'zh-CN-1920x1080-audit.png') });
  await ctx.close();

  // The new officer changes his own password, on a phone, and lands on his alerts.
  const phone = await newPage({ width: 390, height: 844 });
  await login(phone.page, { username: name, password: pw1 });
  await phone.page.waitForFunction(() => location.hash === '#/alerts' || document.querySelector('main.page-alerts'), null, { timeout: 10000 })
    .catch(() => { throw new Error(`an officer on a phone landed on ${phone.page.url()}, not the alerts`); });
  await phone.page.goto(`${BASE}/#/account`);
  const pw2 = `Own-Secret-${Date.now() % 100000}-7y`;
  await phone.page.fill('#pw-old', pw1);
  await phone.page.fill('#pw-new', pw2);
  await phone.page.fill('#pw-again', pw2);
  await phone.page.click('#pw-save');
  await phone.page.waitForFunction(() => document.querySelector('#pw-old')?.value === '', null, { timeout: 10000 })
    .catch(async () => { throw new Error(`password not changed: ${await phone.page.textContent('#password-form .form-error')}`); });
  await phone.page.screenshot({ path: path.join(OUT, 'zh-CN-390x844-account.png') });
  await phone.ctx.close();
  const again = await fetch(`${BASE}/api/v1/auth/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: name, password: pw2 }) });
  assert(again.status === 200, `login with the changed password: ${again.status}`);
  return { msg: `created ${name}, reset, disabled/enabled, audit filtered, own password changed on a phone` };
});

// Occurrences (issue 16): a camera covered, uncovered and covered again is one alert whose
// row says how often, and shows 已恢复 while the picture is back.
await scenario('occurrences', async () => {
  const svc = demo.users.find((u) => u.role === 'service');
  const cam = demo.cameras?.[0];
  if (!svc || !cam) return { skip: 'demo.json has no service user or camera' };
  const tok = await apiToken(svc);
  const key = `${cam.id}/tamper-browsertest-${Date.now()}`;
  const post = async (state) => {
    const res = await fetch(`${BASE}/api/v1/events`, { method: 'POST', headers: { Authorization: `Bearer ${tok}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ type: 'video.crowding', severity: 'minor', state, alarm_key: key, occurred_at: new Date().toISOString(),
        device: { id: cam.id }, message: state === 'active' ? '人员聚集（浏览器测试）' : '人员聚集已解除' }) });
    assert(res.status === 201, `POST /events ${state}: ${res.status} ${await res.text()}`);
  };
  const { ctx, page } = await newPage();
  await login(page, admin);
  await page.goto(`${BASE}/#/alerts`);
  await waitAlertsList(page);
  await post('active');
  const id = await (await page.waitForFunction((m) => [...document.querySelectorAll('tr.alert-row')].find((r) => r.textContent.includes(m))?.dataset.id,
    '人员聚集（浏览器测试）', { timeout: 10000 })).jsonValue();
  const row = `tr.alert-row[data-id="${id}"]`;
  await post('cleared');
  await page.waitForSelector(`${row} [data-recovered]`, { timeout: 10000 });
  await post('active');
  await page.waitForSelector(`${row} .occurrences[data-occurrences="2"]`, { timeout: 10000 });
  await page.waitForSelector(`${row} [data-recovered]`, { state: 'detached', timeout: 10000 });
  const n = await page.$$eval('tr.alert-row', (rs, m) => rs.filter((r) => r.textContent.includes(m)).length, '人员聚集（浏览器测试）');
  assert(n === 1, `${n} rows for one flapping alarm`);
  const cells = await page.textContent(row);
  assert(cells.includes('共 2 次'), `the row does not show the count: ${cells}`);
  await page.screenshot({ path: path.join(OUT, 'zh-CN-1920x1080-alerts-occurrences.png') });
  await page.goto(`${BASE}/#/alerts/${encodeURIComponent(id)}`);
  await page.waitForSelector('#alert-timeline');
  await page.waitForFunction(() => document.querySelector('#alert-timeline')?.textContent.includes('再次发生'), null, { timeout: 10000 });
  const title = await page.textContent('.detail-title');
  assert(title.includes(cam.name || cam.id), `the alert title does not name the camera: ${title}`);
  await page.screenshot({ path: path.join(OUT, 'zh-CN-1920x1080-alert-occurrences.png') });
  await ctx.close();
  // With the English switch the message is English too: rebuilt from the event's type and
  // device, with the gateway's Chinese sentence kept on hover.
  const en = await newPage({ lang: 'en' });
  await login(en.page, admin);
  await en.page.goto(`${BASE}/#/alerts/${encodeURIComponent(id)}`);
  await en.page.waitForSelector('.detail-message');
  const enMsg = (await en.page.textContent('.detail-message')).trim();
  const enTitle = await en.page.getAttribute('.detail-message', 'title');
  assert(enMsg.startsWith('Crowding') && !enMsg.includes('人员聚集'), `the English message is "${enMsg}"`);
  assert((enTitle || '').includes('人员聚集'), `the Chinese original is not kept on hover: "${enTitle}"`);
  await en.ctx.close();
  return { msg: `one row, 共 2 次, 已恢复 between, title "${title.trim()}"; in English "${enMsg}"` };
});

// Camera states (issue 16): while cameras stream, the wall's tree and the devices page show
// them online — not 未知 / grey.
await scenario('camstates', async () => {
  const { ctx, page } = await newPage();
  await login(page, admin);
  const ids = await fillWall(page, Math.min(2, demo.cameras.length));
  await waitPlaying(page, ids);
  await page.waitForFunction((ids) => ids.every((id) => document.querySelector(`.tree .cam[data-camera="${CSS.escape(id)}"] .dot.online`)), ids, { timeout: 40000, polling: 500 })
    .catch(() => { throw new Error('the wall tree does not show the streaming cameras online'); });
  await page.screenshot({ path: path.join(OUT, 'zh-CN-1920x1080-wall-tree-online.png') });
  const dev = await ctx.newPage(); // a tab of its own (the session is per tab): the wall keeps streaming
  await login(dev, admin);
  await dev.goto(`${BASE}/#/devices`);
  await dev.waitForSelector('.summary .stat', { timeout: 10000 });
  await dev.waitForFunction((ids) => ids.every((id) => {
    const r = [...document.querySelectorAll('tr')].find((x) => x.textContent.includes(id));
    return r && r.querySelector('.chip.st-online');
  }), ids, { timeout: 20000, polling: 500 }).catch(() => { throw new Error('the devices page does not show the streaming cameras online'); });
  await dev.screenshot({ path: path.join(OUT, 'zh-CN-1920x1080-devices-camera-states.png') });
  await ctx.close();
  return { msg: `${ids.join(', ')} online in the tree and on the devices page` };
});

// Event clips (issue 19): an alert whose evidence includes an H.264 clip plays it in the detail
// page's <video> — currentTime advances — with the event moment marked on the seek bar, the
// sha256 shown and a download link. Without a clip yet it has a site's analytics service report
// a camera covered and waits for that clip.
await scenario('clip', async () => {
  const tok = adminToken || await apiToken(admin);
  const l = await apiGet(tok, 'alerts?limit=200');
  const all = Array.isArray(l) ? l : l?.items || l?.alerts || [];
  const findClip = async (alerts) => {
    for (const a of alerts) {
      const d = await apiGet(tok, `alerts/${encodeURIComponent(a.id)}`);
      const c = (d?.clips || []).find((x) => x.kind === 'clip' && !/^(h265|hevc)$/i.test(x.codec || ''));
      if (c) return { id: a.id, clip: c };
    }
    return null;
  };
  let found = await findClip(all);
  let made = '';
  if (!found) {
    // No clip yet: a site gateway's analytics worker reports its camera covered (video.tamper,
    // a type with clips in the demo); the site cuts the clip after the post-roll, announces it
    // with evidence.added, and the centre's alert shows it.
    const gw = (demo.gateways || []).find((g) => (g.users || []).some((u) => u.role === 'service'));
    const cam = (demo.cameras || []).find((c) => c.gateway === gw?.id && c.scenario !== 'reboots');
    if (!gw || !cam) return { skip: 'no site gateway with a service user and a camera in demo.json' };
    const svc = gw.users.find((u) => u.role === 'service');
    const lr = await fetch(`${gw.http}/api/v1/auth/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: svc.username, password: svc.password }) });
    assert(lr.ok, `login ${svc.username} at ${gw.id}: ${lr.status}`);
    const stok = (await lr.json()).token;
    const key = `${cam.id}/tamper-cliptest-${Date.now()}`;
    const res = await fetch(`${gw.http}/api/v1/events`, { method: 'POST', headers: { Authorization: `Bearer ${stok}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ type: 'video.tamper', severity: 'major', state: 'active', alarm_key: key, occurred_at: new Date().toISOString(),
        device: { id: cam.id }, message: '摄像机疑似被遮挡（浏览器测试）' }) });
    assert(res.status === 201, `POST /events at ${gw.id}: ${res.status} ${await res.text()}`);
    const deadline = Date.now() + 150000;
    while (!found && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 2000));
      const l2 = await apiGet(tok, 'alerts?limit=50');
      const mine = (Array.isArray(l2) ? l2 : l2?.items || l2?.alerts || []).filter((a) => (a.alarm_key || a.event?.alarm_key || '') === key || JSON.stringify(a).includes(key));
      found = await findClip(mine);
    }
    assert(found, `no clip reached the centre's alert for ${cam.id} within 150 s of the event at ${gw.id}`);
    made = ` (made for a video.tamper of ${cam.id} at ${gw.id})`;
  }
  const { ctx, page } = await newPage();
  await login(page, admin);
  await page.goto(`${BASE}/#/alerts/${encodeURIComponent(found.id)}`);
  const sel = `.clip[data-sha256="${found.clip.sha256}"]`;
  await page.waitForSelector(`${sel} video.clip-video`, { timeout: 15000 });
  const shown = await page.textContent(`${sel} code.sha256`);
  assert(shown.trim() === found.clip.sha256, `the page shows sha256 ${shown}, not ${found.clip.sha256}`);
  const href = await page.getAttribute(`${sel} a.clip-download`, 'href');
  assert(href.includes('download=1'), `the download link is ${href}`);
  if (found.clip.event_at && found.clip.start) assert(await page.$(`${sel} .clip-marker`), 'the event moment is not marked on the seek bar');
  await page.$eval(`${sel} video.clip-video`, (v) => { v.muted = true; return v.play(); });
  await page.waitForFunction((s) => { const v = document.querySelector(`${s} video.clip-video`); return v && v.currentTime > 0.5 && v.videoWidth > 0; },
    sel, { timeout: 30000, polling: 250 }).catch(async () => {
    const st = await page.$eval(`${sel} video.clip-video`, (v) => `currentTime ${v.currentTime}, readyState ${v.readyState}, error ${v.error?.code || ''}`);
    throw new Error(`the clip does not play: ${st}`);
  });
  assert(await page.$eval(`${sel} .clip-no-play`, (el) => el.offsetParent === null), 'the page says the clip cannot play while it plays');
  const t1 = await page.$eval(`${sel} video.clip-video`, (v) => v.currentTime);
  await page.waitForFunction(([s, t]) => document.querySelector(`${s} video.clip-video`).currentTime > t, [sel, t1], { timeout: 10000 })
    .catch(() => { throw new Error(`currentTime stays at ${t1}`); });
  await page.screenshot({ path: path.join(OUT, 'zh-CN-1920x1080-alert-clip.png') });
  // An H.265 clip of the same alert, if any, is offered as a download and says why it does not
  // play (in Chinese, and in English after the switch).
  const d = await apiGet(tok, `alerts/${encodeURIComponent(found.id)}`);
  const hevc = (d?.clips || []).find((x) => x.kind === 'clip' && /^(h265|hevc)$/i.test(x.codec || ''));
  let more = '';
  if (hevc) {
    const hs = `.clip-h265[data-sha256="${hevc.sha256}"]`;
    await page.waitForSelector(`${hs} .clip-no-play`, { timeout: 10000 });
    assert(!(await page.$(`${hs} video`)), 'an H.265 clip is put in a <video>');
    const why = await page.textContent(`${hs} .clip-no-play`);
    assert(why.includes('H.265') && why.includes('下载'), `the H.265 note says: ${why}`);
    assert((await page.getAttribute(`${hs} a.clip-download`, 'href')).includes('download=1'), 'no download for the H.265 clip');
    await page.click('#lang-switch');
    await page.waitForFunction((s) => /browsers cannot play/.test(document.querySelector(`${s} .clip-no-play`)?.textContent || ''), hs, { timeout: 10000 });
    await page.screenshot({ path: path.join(OUT, 'en-1920x1080-alert-clip-h265.png') });
    more = '; the H.265 clip is a download saying why (zh, en)';
  }
  await ctx.close();
  return { msg: `alert ${found.id}: clip ${found.clip.sha256.slice(0, 12)}… plays (currentTime past ${t1.toFixed(2)} s)${more}${made}` };
});

// 取证录像 on a wall tile: the dialog asks for minutes and a reason and starts a recording
// (POST /cameras/{id}/recordings); a gateway without that API says so instead of breaking.
// At the centre, a site gateway's camera is recorded by that gateway, which holds its
// pre-roll: the centre forwards the request, the dialog names the gateway, and the recording
// is listed at the site.
await scenario('recording', async () => {
  const { ctx, page } = await newPage();
  await login(page, admin);
  const [cam] = await fillWall(page, 1);
  const gw = (demo.gateways || []).find((g) => g.id === (demo.cameras || []).find((c) => c.id === cam)?.gateway);
  await page.click(`.tile[data-camera="${cam}"] .tile-rec`);
  await page.waitForSelector('#rec-dialog[open]', { timeout: 5000 });
  await page.waitForFunction(() => document.querySelector('#rec-list .rec-item, #rec-list .empty, #rec-status [data-unavailable]'), null, { timeout: 15000 });
  if (await page.$('#rec-status [data-unavailable]')) {
    assert(!gw, `the centre does not record site camera ${cam}: ${await page.textContent('#rec-status')}`);
    assert(await page.$eval('#rec-start', (b) => b.disabled), 'the start button stays enabled without the API');
    await page.screenshot({ path: path.join(OUT, 'zh-CN-1920x1080-wall-recording-unavailable.png') });
    await page.click('#rec-close');
    await page.waitForSelector('#rec-dialog', { state: 'detached', timeout: 5000 });
    await ctx.close();
    return { msg: `${cam}: the gateway has no recordings API yet; the dialog says so (${'此网关尚不支持取证录像'})` };
  }
  if (gw) {
    const by = await page.waitForSelector(`#rec-gateway[data-gateway="${gw.id}"]`, { state: 'visible', timeout: 10000 });
    const text = await by.textContent();
    assert(text.includes(gw.id) && text.includes('录制'), `the dialog names the recording gateway: ${text}`);
    assert(!(await page.$eval('#rec-start', (b) => b.disabled)), 'the centre does not offer to start a recording of a site camera');
  }
  await page.fill('#rec-reason', '');
  await page.click('#rec-start');
  await page.waitForSelector('#rec-status .alert-box.error', { timeout: 5000 });
  await page.fill('#rec-minutes', '1');
  await page.fill('#rec-reason', '浏览器测试：现场执法取证');
  await page.click('#rec-start');
  const started = await page.waitForSelector('#rec-status .rec-started', { timeout: 15000 });
  const recId = await started.getAttribute('data-recording');
  const recGateway = await started.getAttribute('data-gateway');
  assert(recId, 'the started recording has no id');
  await page.waitForSelector('#rec-list .rec-item', { timeout: 15000 });
  await page.screenshot({ path: path.join(OUT, 'zh-CN-1920x1080-wall-recording.png') });
  await ctx.close();
  if (!gw) return { msg: `${cam}: recording started from the tile` };
  // The site gateway lists the recording, made for the centre's officer.
  assert(recGateway === gw.id, `the answer names ${recGateway}, not the site gateway ${gw.id}`);
  const siteAdmin = gw.users.find((u) => u.role === 'admin');
  const res = await fetch(`${gw.http}/api/v1/auth/login`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: siteAdmin.username, password: siteAdmin.password }) });
  assert(res.ok, `login at ${gw.id}: ${res.status}`);
  const { token } = await res.json();
  const list = await (await fetch(`${gw.http}/api/v1/cameras/${encodeURIComponent(cam)}/recordings`, { headers: { Authorization: `Bearer ${token}` } })).json();
  const mine = (list.items || []).find((r) => r.id === recId);
  assert(mine, `${gw.id} does not list recording ${recId}: ${JSON.stringify(list)}`);
  assert(mine.by.includes(admin.username) && mine.state === 'recording', `the site's recording: ${JSON.stringify(mine)}`);
  return { msg: `${cam}: recording ${recId} started from the centre's tile, recorded and listed at ${gw.id} (by ${mine.by})` };
});

// Screenshots of every page, both languages, desktop and phone.
await scenario('screens', async () => {
  const sensor = demo.sensors?.[0];
  // An alert that still offers its forms reads best; else the one the chain closed.
  const l = await apiGet(adminToken || await apiToken(admin), 'alerts');
  const all = Array.isArray(l) ? l : l?.items || l?.alerts || [];
  const alertId = (all.find((a) => ['opened', 'open', 'claimed'].includes(a.state)) || all[0])?.id || newAlertId;
  const shots = [];
  for (const lang of ['zh-CN', 'en']) {
    for (const [w, hgt] of [[1920, 1080], [390, 844]]) {
      const { ctx, page } = await newPage({ lang, width: w, height: hgt });
      const name = (p) => path.join(OUT, `${lang}-${w}x${hgt}-${p}.png`);
      await page.goto(`${BASE}/#/login`);
      await page.waitForSelector('#login-username');
      await page.screenshot({ path: name('login') }); shots.push(name('login'));
      await login(page, admin);
      const pages = [['wall', '#/wall', '.tile'], ['alerts', '#/alerts', '.alerts-body table, .alerts-body .empty'],
        alertId ? ['alert-detail', `#/alerts/${encodeURIComponent(alertId)}`, '#alert-timeline'] : null,
        ['devices', '#/devices', '.summary .stat'],
        sensor ? ['device-detail', `#/devices/${encodeURIComponent(sensor.id)}`, '.chart, .chart-box .alert-box'] : null,
        ['sites', '#/sites', '.page-sites table, .page-sites .empty'],
        ['uplinks', '#/uplinks', '.uplink, .uplinks .alert-box, .uplinks .empty'],
        ['gateways', '#/gateways', '.page-gateways table, #gw-intro'],
        ['users', '#/users', '.users-body table'], ['audit', '#/audit', '.audit-body table'], ['account', '#/account', '#password-form']].filter(Boolean);
      for (const [p, hash, ready] of pages) {
        await page.goto(`${BASE}/${hash}`);
        await page.waitForSelector(ready, { timeout: 15000 }).catch(() => {});
        if (p === 'wall') await page.waitForFunction(() => [...document.querySelectorAll('.tile[data-camera]')].every((t) => t.dataset.state !== 'connecting'), null, { timeout: 15000 }).catch(() => {});
        await page.waitForTimeout(400);
        await page.screenshot({ path: name(p) });
        shots.push(name(p));
      }
      await ctx.close();
    }
  }
  // The light theme, once per size.
  for (const [w, hgt] of [[1920, 1080], [390, 844]]) {
    const { ctx, page } = await newPage({ width: w, height: hgt });
    await ctx.addInitScript(() => localStorage.setItem('offsite.theme', 'light'));
    await login(page, admin);
    for (const [p, hash, ready] of [['alerts', '#/alerts', '.alerts-body table'], ['devices', '#/devices', '.summary .stat']]) {
      await page.goto(`${BASE}/${hash}`);
      await page.waitForSelector(ready, { timeout: 15000 }).catch(() => {});
      await page.waitForTimeout(300);
      const file = path.join(OUT, `zh-CN-${w}x${hgt}-${p}-light.png`);
      await page.screenshot({ path: file });
      shots.push(file);
    }
    await ctx.close();
  }
  return { msg: `${shots.length} screenshots in ${OUT}` };
});

await browser.close();
if (pageErrors.length) {
  console.log(`page errors (${pageErrors.length}):`);
  for (const e of [...new Set(pageErrors)].slice(0, 20)) console.log(`  ${e}`);
}
const failed = results.filter((r) => r.status === 'fail' || (STRICT && r.status === 'skip'));
const uncaught = pageErrors.filter((e) => !e.startsWith('console:'));
console.log(`\n${results.filter((r) => r.status === 'pass').length} passed, ${results.filter((r) => r.status === 'skip').length} skipped, ${failed.length} failed${uncaught.length ? `, ${uncaught.length} uncaught page errors` : ''}`);
fs.writeFileSync(path.join(OUT, '..', 'browser-results.json'), JSON.stringify({ results, pageErrors }, null, 1));
process.exit(failed.length || uncaught.length ? 1 : 0);
