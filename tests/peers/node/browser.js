// Headless Chromium loads a page like the documented web client example: connect, send
// "WebSocket rocks", show the reply, close. Prints the page's lines, then "OK" if the reply
// came back. Usage: node browser.js URL [SPKI_SHA256_BASE64]
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');

const [url, spki] = process.argv.slice(2);
const page = `<!DOCTYPE html><meta charset="utf-8"><title>WebSocket test</title>
<div id="log"></div>
<script>
  const log = (t) => { const p = document.createElement('p'); p.textContent = t; document.getElementById('log').appendChild(p); };
  const ws = new WebSocket(${JSON.stringify(url)});
  ws.onopen = () => { log('CONNECTED'); log('SENT: WebSocket rocks'); ws.send('WebSocket rocks'); };
  ws.onmessage = (e) => { log('RESPONSE: ' + e.data); ws.close(); };
  ws.onerror = () => log('ERROR');
  ws.onclose = () => log('DISCONNECTED');
</script>`;

(async () => {
  const args = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'];
  if (spki) args.push('--ignore-certificate-errors-spki-list=' + spki);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ws1c-chromium-'));
  const browser = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args,
  });
  try {
    const tab = await browser.newPage();
    await tab.setContent(page);
    await tab.waitForFunction(() => document.body.innerText.includes('DISCONNECTED'), null, { timeout: 20000 });
    const text = await tab.innerText('#log');
    console.log(text);
    console.log(text.includes('RESPONSE: WebSocket rocks') ? 'OK' : 'NO REPLY');
  } finally {
    await browser.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
})().catch((e) => { console.log('ERROR ' + e.message); process.exit(1); });
