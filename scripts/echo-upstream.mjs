// A tiny upstream for `npm run demo:envoy` and the Envoy end-to-end tests: answers
// every request with the JSON of what it received (method, path, headers, raw header
// pairs), so you can see exactly what Envoy forwarded after ext_authz. Importable
// (`startEcho(port)`) or runnable (`PORT=8000 HOST=127.0.0.1 node scripts/echo-upstream.mjs`).
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';

/** Starts the echo server; resolves with it once listening (port 0 = any free port). */
export function startEcho(port = 0, host = '127.0.0.1') {
  // Large enough that Envoy's limits, not Node's 16 KiB default, decide what passes.
  const server = createServer({ maxHeaderSize: 1024 * 1024 }, (req, res) => {
    const body = JSON.stringify({
      method: req.method,
      path: req.url,
      httpVersion: req.httpVersion,
      headers: req.headers,
      rawHeaders: req.rawHeaders,
    });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const port = Number(process.env.PORT ?? 8000);
  const server = await startEcho(port, process.env.HOST ?? '127.0.0.1');
  console.log(`echo upstream listening on ${server.address().port}`);
  for (const sig of ['SIGTERM', 'SIGINT'])
    process.on(sig, () => {
      server.close(() => process.exit(0));
      server.closeAllConnections();
    });
}
