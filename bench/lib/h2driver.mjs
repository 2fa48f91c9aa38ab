#!/usr/bin/env node
// Driver B: a lean HTTP/2 (h2c) gRPC load generator, run as its own process:
//   node bench/lib/h2driver.mjs SPEC.json   → prints one JSON result line on stdout.
//
// It shares the machine's cores with the server, so it writes raw HTTP/2 frames on
// net.Socket instead of going through node:http2 streams: requests are pre-encoded
// (HPACK literals without indexing, no Huffman, no dynamic table), a request is one
// Buffer (HEADERS + DATA/END_STREAM), and a response is complete when a frame with
// END_STREAM (the trailers) or RST_STREAM arrives. Response headers are not decoded;
// decisions are checked against the server's /metrics by the orchestrator, and
// bench/lib/probe.mjs checks real responses with node:http2 before every run.
//
// SPEC: { host, port, bodiesFile, connections, streams,
//         mode: "duration" | "count" | "rate",
//         durationS, warmupS,            // duration and rate modes
//         count,                         // count mode: send bodies[0..count) once each
//         rate }                         // rate mode: open loop, requests per second
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { splitFrames, CHECK_PATH } from './proto.mjs';

const spec = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const bodies = splitFrames(readFileSync(spec.bodiesFile));
if (bodies.length === 0) throw new Error('no bodies');

const T_DATA = 0x0;
const T_HEADERS = 0x1;
const T_RST_STREAM = 0x3;
const T_SETTINGS = 0x4;
const T_PING = 0x6;
const T_GOAWAY = 0x7;
const T_WINDOW_UPDATE = 0x8;
const F_END_STREAM = 0x1;
const F_ACK = 0x1;
const F_END_HEADERS = 0x4;

function frame(type, flags, stream, payload) {
  const b = Buffer.allocUnsafe(9 + payload.length);
  b.writeUIntBE(payload.length, 0, 3);
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(stream, 5);
  payload.copy(b, 9);
  return b;
}

function hpackInt(value, prefixBits, firstByteFlags) {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [firstByteFlags | value];
  const out = [firstByteFlags | max];
  value -= max;
  while (value >= 128) {
    out.push((value % 128) + 128);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return out;
}
const hpackString = (s) => {
  const bytes = Buffer.from(s, 'latin1');
  return Buffer.concat([Buffer.from(hpackInt(bytes.length, 7, 0)), bytes]);
};
/** Literal header field with incremental indexing (RFC 7541 §6.2.1), indexed or new name. */
const literal = (nameIndexOrName, value) =>
  typeof nameIndexOrName === 'number'
    ? Buffer.concat([Buffer.from(hpackInt(nameIndexOrName, 6, 0x40)), hpackString(value)])
    : Buffer.concat([Buffer.from([0x40]), hpackString(nameIndexOrName), hpackString(value)]);

// What Envoy's gRPC client sends for an ext_authz Check (the authority is the cluster
// name). Like any HPACK encoder (Envoy's included), the first request on a connection
// adds the headers to the dynamic table and later ones refer to them by index.
const FIELDS = [
  [4, CHECK_PATH], // :path
  [1, 'ext_authz'], // :authority
  [31, 'application/grpc'], // content-type
  ['te', 'trailers'],
  ['grpc-timeout', '1S'],
  [58, 'envoy/1.30 bench-h2raw'], // user-agent
];
const STATIC = [0x83, 0x86]; // :method POST, :scheme http (static table 3, 6)
const FIRST_HEADER_BLOCK = Buffer.concat([Buffer.from(STATIC), ...FIELDS.map(([n, v]) => literal(n, v))]);
// The last inserted entry is dynamic index 62.
const HEADER_BLOCK = Buffer.from([...STATIC, ...FIELDS.map((_, i) => 0x80 | (62 + FIELDS.length - 1 - i))]);

let maxBody = 0;
for (const b of bodies) maxBody = Math.max(maxBody, b.length);
if (maxBody > 16384) throw new Error(`body of ${maxBody} bytes exceeds one DATA frame`);

// ---- shared state ------------------------------------------------------------------
let nextBody = 0;
let sent = 0;
let completed = 0;
let errors = 0;
let goaways = 0;
let stalls = 0;
let wuCount = 0;
let wuStream = 0;
let stopping = false;
let measureFrom = Infinity; // performance.now() from which completions are measured
let measureTo = Infinity;
let measured = 0;
let lat = new Float64Array(1 << 16);
const countMode = spec.mode === 'count';
const rateMode = spec.mode === 'rate';
const totalToSend = countMode ? Math.min(spec.count, bodies.length) : Infinity;

function record(ms) {
  if (measured === lat.length) {
    const bigger = new Float64Array(lat.length * 2);
    bigger.set(lat);
    lat = bigger;
  }
  lat[measured++] = ms;
}

class Conn {
  constructor() {
    this.inflight = new Map(); // stream id → start time
    this.nextStream = 1;
    this.sendWindow = 65535; // connection-level flow control for our DATA
    this.recvSinceUpdate = 0;
    this.pending = null;
    this.ready = false;
    this.backlog = []; // rate mode: scheduled times of requests waiting for flow-control window
  }

  /** Rate mode: send what is due. A request that had to wait for the server's flow-control
   *  window is timed from when it was scheduled, so stalls are not hidden. */
  drainBacklog() {
    if (this.backlog.length === 0 || stopping) return;
    this.sock.cork();
    const waited = this.backlogStalled; // these requests queued behind a stall
    let i = 0;
    for (; i < this.backlog.length && this.sendWindow >= maxBody; i++) {
      this.send(bodies[nextBody], waited ? this.backlog[i] : undefined);
      nextBody = nextBody + 1 === bodies.length ? 0 : nextBody + 1;
    }
    this.backlog = i === this.backlog.length ? [] : this.backlog.slice(i);
    this.backlogStalled = this.backlog.length > 0;
    if (this.backlogStalled) stalls++;
    this.sock.uncork();
  }

  connect() {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: spec.host, port: spec.port, noDelay: true });
      this.sock = s;
      s.once('error', reject);
      s.once('connect', () => {
        s.removeListener('error', reject);
        s.on('error', () => {
          if (!stopping) errors++;
        });
        // Preface + SETTINGS (no push, 1 MiB stream windows) + a big connection window.
        const settings = Buffer.alloc(12);
        settings.writeUInt16BE(0x2, 0); // ENABLE_PUSH
        settings.writeUInt32BE(0, 2);
        settings.writeUInt16BE(0x4, 6); // INITIAL_WINDOW_SIZE
        settings.writeUInt32BE(1 << 20, 8);
        const wu = Buffer.alloc(4);
        wu.writeUInt32BE((1 << 30) - 65535, 0);
        s.write(
          Buffer.concat([
            Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
            frame(T_SETTINGS, 0, 0, settings),
            frame(T_WINDOW_UPDATE, 0, 0, wu),
          ]),
        );
        s.on('data', (chunk) => this.onData(chunk));
        s.on('close', () => {
          if (!stopping) {
            errors++;
            process.stderr.write('h2driver: connection closed by the server\n');
          }
        });
        this.ready = true;
        resolve();
      });
    });
  }

  send(body, startedAt) {
    const sid = this.nextStream;
    this.nextStream += 2;
    const block = sid === 1 ? FIRST_HEADER_BLOCK : HEADER_BLOCK;
    const hb = block.length;
    const buf = Buffer.allocUnsafe(18 + hb + body.length);
    buf.writeUIntBE(hb, 0, 3);
    buf[3] = T_HEADERS;
    buf[4] = F_END_HEADERS;
    buf.writeUInt32BE(sid, 5);
    block.copy(buf, 9);
    const d = 9 + hb;
    buf.writeUIntBE(body.length, d, 3);
    buf[d + 3] = T_DATA;
    buf[d + 4] = F_END_STREAM;
    buf.writeUInt32BE(sid, d + 5);
    body.copy(buf, d + 9);
    this.sendWindow -= body.length;
    this.inflight.set(sid, startedAt ?? performance.now());
    sent++;
    this.sock.write(buf);
  }

  /** Closed loop: keep `streams` requests in flight. */
  pump() {
    if (rateMode) return;
    while (
      !stopping &&
      this.inflight.size < spec.streams &&
      this.sendWindow >= maxBody &&
      sent < totalToSend
    ) {
      this.send(bodies[nextBody]);
      nextBody = nextBody + 1 === bodies.length ? 0 : nextBody + 1;
    }
  }

  complete(sid, ok) {
    const t0 = this.inflight.get(sid);
    if (t0 === undefined) return;
    this.inflight.delete(sid);
    if (!ok) errors++;
    completed++;
    const now = performance.now();
    if (t0 >= measureFrom && now <= measureTo) record(now - t0);
    if (countMode && completed === totalToSend) finish();
  }

  onData(chunk) {
    let buf = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    let off = 0;
    this.sock.cork();
    while (buf.length - off >= 9) {
      const len = (buf[off] << 16) | (buf[off + 1] << 8) | buf[off + 2];
      if (buf.length - off < 9 + len) break;
      const type = buf[off + 3];
      const flags = buf[off + 4];
      const sid = buf.readUInt32BE(off + 5) & 0x7fffffff;
      const p = off + 9;
      switch (type) {
        case T_DATA:
          this.recvSinceUpdate += len;
          if (flags & F_END_STREAM) this.complete(sid, true);
          break;
        case T_HEADERS:
          if (flags & F_END_STREAM) this.complete(sid, true);
          break;
        case T_RST_STREAM:
          this.complete(sid, false);
          break;
        case T_SETTINGS:
          if (!(flags & F_ACK)) this.sock.write(frame(T_SETTINGS, F_ACK, 0, Buffer.alloc(0)));
          break;
        case T_PING:
          if (!(flags & F_ACK)) this.sock.write(frame(T_PING, F_ACK, 0, buf.subarray(p, p + 8)));
          break;
        case T_GOAWAY:
          goaways++;
          break;
        case T_WINDOW_UPDATE:
          if (sid === 0) {
            this.sendWindow += buf.readUInt32BE(p) & 0x7fffffff;
            if (process.env.H2DEBUG) wuCount++;
          } else if (process.env.H2DEBUG) wuStream++;
          break;
        default:
          break;
      }
      off += 9 + len;
    }
    this.pending = off < buf.length ? Buffer.from(buf.subarray(off)) : null;
    if (this.recvSinceUpdate > 1 << 28) {
      const wu = Buffer.alloc(4);
      wu.writeUInt32BE(this.recvSinceUpdate, 0);
      this.sock.write(frame(T_WINDOW_UPDATE, 0, 0, wu));
      this.recvSinceUpdate = 0;
    }
    this.pump();
    this.sock.uncork();
    if (rateMode) this.drainBacklog();
  }
}

const conns = [];
for (let i = 0; i < spec.connections; i++) conns.push(new Conn());
await Promise.all(conns.map((c) => c.connect()));

const started = performance.now();
let finished = false;
let rateTimer;

function finish() {
  if (finished) return;
  finished = true;
  stopping = true;
  const end = performance.now();
  if (rateTimer) clearInterval(rateTimer);
  let seconds;
  if (countMode) seconds = (end - started) / 1000;
  else seconds = (Math.min(end, measureTo) - measureFrom) / 1000;
  const latencies = lat.subarray(0, measured);
  const result = {
    driver: 'h2raw',
    mode: spec.mode,
    connections: spec.connections,
    streams: spec.streams,
    sent,
    completed,
    errors,
    goaways,
    flow_control_stalls: stalls,
    ...(process.env.H2DEBUG ? { wuCount, wuStream, windows: conns.map((c) => c.sendWindow) } : {}),
    measured,
    seconds,
    rps: (countMode ? completed : measured) / seconds,
    latenciesFile: spec.latenciesFile,
  };
  if (spec.latenciesFile) {
    // Raw latencies for the orchestrator (percentiles computed there).
    import('node:fs').then(({ writeFileSync }) => {
      writeFileSync(spec.latenciesFile, Buffer.from(latencies.buffer, 0, latencies.length * 8));
      process.stdout.write(JSON.stringify(result) + '\n');
      for (const c of conns) c.sock.destroy();
      process.exit(0);
    });
  } else {
    process.stdout.write(JSON.stringify(result) + '\n');
    for (const c of conns) c.sock.destroy();
    process.exit(0);
  }
}

if (countMode) {
  measureFrom = started;
  for (const c of conns) c.pump();
} else {
  measureFrom = started + spec.warmupS * 1000;
  measureTo = measureFrom + spec.durationS * 1000;
  setTimeout(finish, (spec.warmupS + spec.durationS) * 1000 + 5);
  if (rateMode) {
    // Open loop: every millisecond, send what the schedule says is due, spread over
    // the connections; latency is measured from the moment a request is written
    // (from its scheduled time if it had to wait for flow control).
    let scheduled = 0;
    let rr = 0;
    rateTimer = setInterval(() => {
      const now = performance.now();
      const due = Math.floor(((now - started) * spec.rate) / 1000) - scheduled;
      for (let i = 0; i < due; i++) {
        const c = conns[rr];
        rr = rr + 1 === conns.length ? 0 : rr + 1;
        scheduled++;
        c.backlog.push(now);
      }
      for (const c of conns) c.drainBacklog();
    }, 1);
  } else {
    for (const c of conns) c.pump();
  }
}
