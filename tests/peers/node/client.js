// A real WebSocket client for the host tests (Node `ws`).
// Usage: node client.js URL [CA_FILE]
// Sends "hello", "Привет, сервер", a 100 KB text and the bytes 00 01 02 FF, expects each echoed
// back unchanged (text as text, binary as binary), closes with 4000 "done", prints "OK".
'use strict';
const fs = require('fs');
const WebSocket = require('ws');

const [url, ca] = process.argv.slice(2);
const msgs = ['hello', 'Привет, сервер', 'x'.repeat(100000), Buffer.from([0, 1, 2, 255])];
const ws = new WebSocket(url, ca ? { ca: fs.readFileSync(ca) } : {});
let i = 0;
const fail = (why) => { console.log('ERROR ' + why); process.exit(1); };
setTimeout(() => fail('timeout'), 20000).unref();
ws.on('error', (e) => fail(e.message));
ws.on('open', () => ws.send(msgs[0]));
ws.on('message', (data, isBinary) => {
  const sent = msgs[i];
  const same = Buffer.isBuffer(sent)
    ? isBinary && Buffer.compare(Buffer.from(data), sent) === 0
    : !isBinary && data.toString('utf8') === sent;
  if (!same) fail(`mismatch at ${i}`);
  i += 1;
  if (i < msgs.length) ws.send(msgs[i]);
  else ws.close(4000, 'done');
});
ws.on('close', (code) => {
  if (i === msgs.length && code === 4000) { console.log('OK'); process.exit(0); }
  fail(`closed early with ${code} after ${i}`);
});
