// A socket.io 4 server for tests/socketio.rs. Listens on 127.0.0.1:$PORT (0: any), prints
// {"port": N} first, then one JSON line per thing the test checks (connections, events the
// server received, ack answers). allowEIO3 is on, so Engine.IO v3 clients connect too.
// Env: PORT, TLS_CERT/TLS_KEY (wss), PING_INTERVAL/PING_TIMEOUT (ms).
//
// What a client can ask by event name:
//   echo ...args       -> emits "echo" with the same args (binary stays binary)
//   ack ...args, cb    -> cb({"got": args}); a Buffer first arg is answered with that Buffer
//   ask                -> emits "question" ("ответ?") with an ack; prints {"answer": [...]}
//   burst n            -> emits "tick" 0..n-1, then "done"
//   big n              -> emits "big" with a string of n "я"
//   nested             -> emits "nested" with a nested object
//   file               -> emits "file" with a Buffer [0,1,2,255] and {"name": "x.bin"}
//   new message ...    -> broadcast "new message" to the namespace (the Socket.IO chat demo)
//   ready              -> emits "order" {"id": 1, "sum": 100} with an ack; prints {"answer": [...]}
//   kick               -> socket.disconnect(true) (the server ends the socket)
//   die                -> the process exits at once (the server dies)
'use strict';
const fs = require('fs');
const http = require('http');
const https = require('https');
const { Server } = require('socket.io');

const print = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const show = (a) => (Buffer.isBuffer(a) ? { bin: a.toString('base64') } : a);

const handler = (req, res) => { res.writeHead(404); res.end(); };
const web = process.env.TLS_CERT
  ? https.createServer({ cert: fs.readFileSync(process.env.TLS_CERT), key: fs.readFileSync(process.env.TLS_KEY) }, handler)
  : http.createServer(handler);
const io = new Server(web, {
  allowEIO3: true,
  maxHttpBufferSize: 10e6,
  pingInterval: Number(process.env.PING_INTERVAL || 25000),
  pingTimeout: Number(process.env.PING_TIMEOUT || 20000),
});

function serve(nsp) {
  nsp.on('connection', (socket) => {
    print({
      connected: socket.id,
      nsp: nsp.name,
      eio: socket.conn.protocol,
      auth: socket.handshake.auth,
      query: socket.handshake.query.token || null,
    });
    socket.onAny((event, ...args) => {
      const cb = typeof args[args.length - 1] === 'function' ? args.pop() : null;
      print({ nsp: nsp.name, event, args: args.map(show), ack: !!cb });
      switch (event) {
        case 'echo': socket.emit('echo', ...args); break;
        case 'ack':
          if (cb) cb(Buffer.isBuffer(args[0]) ? args[0] : { got: args });
          break;
        case 'ask':
          socket.emit('question', 'ответ?', (...reply) => print({ answer: reply.map(show) }));
          break;
        case 'burst':
          for (let i = 0; i < Number(args[0]); i++) socket.emit('tick', i);
          socket.emit('done');
          break;
        case 'big': socket.emit('big', 'я'.repeat(Number(args[0]))); break;
        case 'nested': socket.emit('nested', { a: [1, { b: 'в' }], c: null, d: 'кавычки "x"' }); break;
        case 'file': socket.emit('file', Buffer.from([0, 1, 2, 255]), { name: 'x.bin' }); break;
        case 'new message': nsp.emit('new message', ...args); break;
        case 'ready':
          socket.emit('order', { id: 1, sum: 100 }, (...reply) => print({ answer: reply.map(show) }));
          break;
        case 'kick': socket.disconnect(true); break;
        case 'die': process.exit(0); break;
      }
    });
    socket.on('disconnect', (reason) => print({ disconnected: socket.id, reason }));
  });
}

serve(io.of('/'));
serve(io.of('/admin'));
const priv = io.of('/private');
priv.use((socket, next) => {
  const token = socket.handshake.auth.token || socket.handshake.query.token;
  next(token === 's3cret' ? undefined : new Error('Not authorized'));
});
serve(priv);
const orders = io.of('/orders');
orders.use((socket, next) => next(socket.handshake.auth.token === 's3cret' ? undefined : new Error('Not authorized')));
serve(orders);

web.listen(Number(process.env.PORT || 0), '127.0.0.1', () => print({ port: web.address().port }));
