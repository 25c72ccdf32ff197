// The floors mdserver is measured against, each run as its own process like the server:
//   bare     node:http answering a constant: what Node itself costs per request;
//   express  an Express 5 app whose single middleware answers a constant, with the same app
//            settings and server timeouts as mdserver: the framework's own cost.
// Usage: node dist/bench/floor.js bare|express [PORT]   (prints the bound port on stdout)

import http from 'node:http';
import express from 'express';

/** The size of a typical leaf answer (an instance id). */
const BODY = 'i-127.64.12.34';

const SERVER_OPTIONS = { keepAliveTimeout: 5000, requestTimeout: 30000, headersTimeout: 10000 };

function bare(): http.Server {
  const body = Buffer.from(BODY);
  return http.createServer(SERVER_OPTIONS, (_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': body.length });
    res.end(body);
  });
}

function expressApp(): http.Server {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use((_req, res) => {
    res.status(200).type('text/plain; charset=utf-8').send(BODY);
  });
  return http.createServer(SERVER_OPTIONS, app);
}

const kind = process.argv[2];
if (kind !== 'bare' && kind !== 'express') {
  process.stderr.write('usage: floor.js bare|express [PORT]\n');
  process.exit(2);
}
const server = kind === 'bare' ? bare() : expressApp();
server.listen(Number(process.argv[3] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${(server.address() as { port: number }).port}\n`);
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
