// Interop peer for tests/interop.rs: a page in headless Chromium (playwright-core, Debian's
// /usr/bin/chromium) as the WebSocket client.
// Usage: node interop-browser.js URL CLOSE_BY [SPKI_SHA256_BASE64]
// The page sends a Cyrillic text, a 100 KB text and binary bytes and checks each echo (text
// as text, binary as binary), stays 400 ms (so the server's pings get their pongs, which a
// page cannot send itself), then closes: CLOSE_BY=client closes with 4000 "клиент: готово";
// CLOSE_BY=server sends "закрой меня" and waits for the server's close. Prints the page's
// lines ("ECHO OK", "CLOSED <code> <reason> clean=<bool>"), then "OK".
'use strict';
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');

const [url, closeBy, spki] = process.argv.slice(2);
const page = `<!DOCTYPE html><meta charset="utf-8"><title>interop</title><pre id="log"></pre>
<script>
  const log = (t) => { document.getElementById('log').textContent += t + '\\n'; };
  const msgs = ['Привет, сервер! Ёё', 'Ж'.repeat(50000), new Uint8Array([0, 1, 2, 127, 128, 254, 255])];
  const ws = new WebSocket(${JSON.stringify(url)});
  ws.binaryType = 'arraybuffer';
  let i = 0;
  ws.onopen = () => ws.send(msgs[0]);
  ws.onmessage = (e) => {
    const sent = msgs[i];
    const same = typeof sent === 'string'
      ? e.data === sent
      : e.data instanceof ArrayBuffer && new Uint8Array(e.data).join() === sent.join();
    if (!same) { log('MISMATCH ' + i); ws.close(); return; }
    i += 1;
    if (i < msgs.length) { ws.send(msgs[i]); return; }
    log('ECHO OK');
    setTimeout(() => {
      if (${JSON.stringify(closeBy)} === 'client') ws.close(4000, 'клиент: готово');
      else ws.send('закрой меня');
    }, 400);
  };
  ws.onerror = () => log('ERROR');
  ws.onclose = (e) => { log('CLOSED ' + e.code + ' ' + e.reason + ' clean=' + e.wasClean); log('DONE'); };
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
    await tab.waitForFunction(() => document.getElementById('log').textContent.includes('DONE'), null, { timeout: 20000 });
    const text = await tab.innerText('#log');
    console.log(text.trim());
    console.log(text.includes('ECHO OK') ? 'OK' : 'NO ECHO');
  } finally {
    await browser.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
})().catch((e) => { console.log('ERROR ' + e.message); process.exit(1); });
