// Benchmark peer: a Socket.IO 4 server the way its docs set one up, with the
// native `bufferutil` add-on its performance guide recommends.
//
// `node server.js [PORT]` (0 = any free port) serves on 127.0.0.1:
// - Socket.IO (Engine.IO v4) at /socket.io/; a client connecting with the
//   query `room=NAME` (or `room=A,B` for several) is joined to that room;
// - `POST /publish/NAME`: the body is emitted to room NAME as one event "m".
// It prints `listening on http://127.0.0.1:PORT` once bound.
'use strict';

const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.argv[2] || 0);

const server = http.createServer((req, res) => {
  const match = req.method === 'POST' && /^\/publish\/([^/?]+)/.exec(req.url);
  if (!match) {
    res.writeHead(404);
    res.end();
    return;
  }
  const room = decodeURIComponent(match[1]);
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    io.to(room).emit('m', Buffer.concat(chunks).toString());
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
});

const io = new Server(server, {
  serveClient: false,
  transports: ['websocket'],
  cors: { origin: '*' },
});

io.on('connection', (socket) => {
  const rooms = String(socket.handshake.query.room || '')
    .split(',')
    .filter((room) => room.length > 0);
  socket.join(rooms);
});

server.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
