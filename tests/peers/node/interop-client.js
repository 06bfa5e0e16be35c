// Interop peer for tests/interop.rs (Node `ws` client).
// Usage: node interop-client.js URL CLOSE_BY [CA_FILE]
// Sends a Cyrillic text, a 100 KB text and binary bytes, expects each echoed back unchanged
// (text as text, binary as binary), pings with "ping-1" and expects that pong, stays 400 ms
// (so the server's own pings get their pongs), then closes: CLOSE_BY=client closes with 4000
// "клиент: готово"; CLOSE_BY=server sends "закрой меня" and waits for the server's close.
// Prints "CLOSED <code> <reason>" (the close frame received) and "OK" last.
'use strict';
const fs = require('fs');
const WebSocket = require('ws');

const [url, closeBy, ca] = process.argv.slice(2);
const msgs = ['Привет, сервер! Ёё', 'Ж'.repeat(50000), Buffer.from([0, 1, 2, 127, 128, 254, 255])];
const fail = (why) => { console.log('ERROR ' + why); process.exit(1); };
setTimeout(() => fail('timeout'), 20000).unref();
const ws = new WebSocket(url, ca ? { ca: fs.readFileSync(ca) } : {});
let i = 0;
let ponged = false;
ws.on('error', (e) => fail(e.message));
ws.on('open', () => ws.send(msgs[0]));
ws.on('message', (data, isBinary) => {
  const sent = msgs[i];
  const same = Buffer.isBuffer(sent)
    ? isBinary && Buffer.compare(Buffer.from(data), sent) === 0
    : !isBinary && data.toString('utf8') === sent;
  if (!same) fail(`echo mismatch at ${i}`);
  i += 1;
  if (i < msgs.length) ws.send(msgs[i]);
  else ws.ping('ping-1');
});
ws.on('pong', (data) => {
  if (ponged || data.toString() !== 'ping-1') return;
  ponged = true;
  console.log('PONG true');
  setTimeout(() => {
    if (closeBy === 'client') ws.close(4000, 'клиент: готово');
    else ws.send('закрой меня');
  }, 400);
});
ws.on('close', (code, reason) => {
  console.log(`CLOSED ${code} ${reason.toString()}`);
  if (i === msgs.length && ponged) { console.log('OK'); process.exit(0); }
  fail(`closed early after ${i} messages, pong ${ponged}`);
});
