// Opens a WHEP player page in headless Chromium and prints its stats as one JSON line every
// 500 ms until the duration (ms) ends. Usage: node play.mjs PAGE_URL DURATION_MS
import { chromium } from 'playwright-core';

const [pageURL, durationArg] = process.argv.slice(2);
const duration = Number(durationArg || 10000);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required', '--allow-loopback-in-peer-connection',
    '--disable-features=WebRtcHideLocalIpsWithMdns',
  ],
});
let code = 0;
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.error('page:', m.text()));
  await page.goto(pageURL);
  const end = Date.now() + duration;
  while (Date.now() < end) {
    await page.waitForTimeout(500);
    const s = await page.evaluate(() => window.whepStats || {});
    console.log(JSON.stringify(s));
  }
} catch (e) {
  console.error(e);
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
