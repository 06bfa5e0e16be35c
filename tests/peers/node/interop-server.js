// Interop peer for tests/interop.rs (Node `ws` server).
// Usage: node interop-server.js [CERT KEY]
// Echoes every message; on the text "закрой меня" closes with 4001 "сервер: пока". Prints
// "PORT <n>" once listening on 127.0.0.1:0, "PING <payload>" per ping, and
// "CLOSED <code> <reason>" per connection (the close frame received). Exits when its stdin
// closes.
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');
const WebSocket = require('ws');

const [cert, key] = process.argv.slice(2);
const server = cert
  ? https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) })
  : http.createServer();
const wss = new WebSocket.Server({ server, maxPayload: 64 << 20 });
wss.on('connection', (ws) => {
  // Without an error handler one bad frame would kill the process.
  ws.on('error', (e) => console.log('WSERROR ' + e.message));
  ws.on('ping', (data) => console.log('PING ' + data.toString()));
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.toString('utf8') === 'закрой меня') ws.close(4001, 'сервер: пока');
    else ws.send(data, { binary: isBinary });
  });
  ws.on('close', (code, reason) => console.log(`CLOSED ${code} ${reason.toString()}`));
});
server.listen(0, '127.0.0.1', () => console.log('PORT ' + server.address().port));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
