// Fallback load generator for the Envoy rows when h2load is not installed:
//   node bench/lib/h2get.mjs SPEC.json   → one JSON result line on stdout.
// node:http2 GETs over one h2c connection, `streams` in flight (closed loop), paths
// cycled in order from a file (one per line), optionally one extra header; or open loop
// at `rate` requests per second (1 ms ticks; `streams` caps what is in flight, and what
// is due beyond it is reported as `dropped`). It costs more CPU than h2load on the
// same cores, so only compare rows measured with the same driver.
//
// SPEC: { port, pathsFile, streams, durationS, warmupS, latenciesFile, expectStatus?, header?, rate? }
// `succeeded` counts responses with expectStatus (default 200), `non200` every other status.
import http2 from 'node:http2';
import { readFileSync, writeFileSync } from 'node:fs';

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const paths = readFileSync(spec.pathsFile, 'utf8').split('\n').filter(Boolean);
const session = http2.connect(`http://127.0.0.1:${spec.port}`);
await new Promise((resolve, reject) => {
  session.once('connect', resolve);
  session.once('error', reject);
});

const expectStatus = spec.expectStatus ?? 200;
const extra = spec.header ? { [spec.header[0]]: spec.header[1] } : {};
const statuses = {};
let inFlight = 0;
let dropped = 0; // open loop: due while `streams` were already in flight, not sent
let next = 0;
let stopping = false;
let succeeded = 0;
let failed = 0;
let non200 = 0;
let measured = 0;
let lat = new Float64Array(1 << 16);
const started = performance.now();
const measureFrom = started + spec.warmupS * 1000;
const measureTo = measureFrom + spec.durationS * 1000;

function one() {
  if (stopping) return;
  inFlight++;
  const path = paths[next];
  next = next + 1 === paths.length ? 0 : next + 1;
  const t0 = performance.now();
  let status = 0;
  const req = session.request({ ':path': path, ...extra });
  req.on('response', (h) => (status = h[':status']));
  req.on('data', () => {});
  req.on('end', () => {
    const now = performance.now();
    inFlight--;
    if (t0 >= measureFrom && now <= measureTo) {
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status === expectStatus) succeeded++;
      else non200++;
      if (measured === lat.length) {
        const bigger = new Float64Array(lat.length * 2);
        bigger.set(lat);
        lat = bigger;
      }
      lat[measured++] = now - t0;
    }
    if (!spec.rate) one();
  });
  req.on('error', () => {
    inFlight--;
    if (!stopping) failed++;
    if (!spec.rate) one();
  });
  req.end();
}

if (spec.rate) {
  // Open loop: every millisecond, start what the schedule says is due (up to `streams` in flight).
  let sent = 0;
  setInterval(() => {
    const due = Math.floor(((performance.now() - started) * spec.rate) / 1000) - sent;
    for (let i = 0; i < due; i++) {
      sent++;
      if (inFlight < spec.streams) one();
      else if (performance.now() >= measureFrom) dropped++;
    }
  }, 1);
} else for (let i = 0; i < spec.streams; i++) one();
setTimeout(
  () => {
    stopping = true;
    writeFileSync(spec.latenciesFile, Buffer.from(lat.buffer, 0, measured * 8));
    process.stdout.write(
      JSON.stringify({
        driver: 'node:http2',
        connections: 1,
        streams: spec.streams,
        seconds: spec.durationS,
        rps: measured / spec.durationS,
        succeeded,
        failed,
        errored: 0,
        non200,
        statuses,
        dropped,
      }) + '\n',
    );
    session.destroy();
    process.exit(0);
  },
  (spec.warmupS + spec.durationS) * 1000 + 5,
);
