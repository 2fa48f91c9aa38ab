// A tiny upstream for the Envoy end-to-end test: answers every request with the
// JSON of what it received (method, path, headers), so the test can see exactly
// which headers Envoy forwarded after ext_authz. Runs in a plain node image.
import { createServer } from 'node:http';

const port = Number(process.env.PORT ?? 8000);

const server = createServer((req, res) => {
  const body = JSON.stringify({ method: req.method, path: req.url, headers: req.headers });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});

server.listen(port, '0.0.0.0', () => console.log(`echo upstream listening on ${port}`));
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => server.close(() => process.exit(0)));
