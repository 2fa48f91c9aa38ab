// Driver A: nghttp2's h2load (C, lean). It sends the same body on every request,
// so it drives the single-body scenarios (baseline, one repeated token) only.
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { CHECK_PATH } from './proto.mjs';
import { latencyStats } from './stats.mjs';

export function h2loadPath() {
  try {
    return execFileSync('sh', ['-c', 'command -v h2load'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export function h2loadVersion(bin) {
  try {
    return execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim().split('\n')[0];
  } catch {
    return undefined;
  }
}

/**
 * Runs h2load for warmupS + durationS against one body; `rps` (total) makes it open
 * loop via --rps (per client). Percentiles come from --log-file (µs per request).
 */
export function runH2load(bin, { port, bodyFile, logFile, connections, streams, durationS, warmupS, rps }) {
  const args = [
    `http://127.0.0.1:${port}${CHECK_PATH}`,
    '-c', String(connections),
    '-m', String(streams),
    '-t', '1',
    '-D', `${durationS}s`,
    '--warm-up-time', `${Math.round(warmupS * 1000)}ms`,
    '-d', bodyFile,
    '-H', 'content-type: application/grpc',
    '-H', 'te: trailers',
    '-H', 'grpc-timeout: 1S',
    '--log-file', logFile,
  ];
  if (rps) args.push(`--rps=${Math.max(1, Math.round(rps / connections))}`);
  return runH2loadArgs(bin, args, { logFile, connections, streams });
}

/**
 * Runs h2load with `args` (which must include `--log-file logFile`) and parses its
 * summary; latency percentiles come from the log file (µs per request).
 */
export function runH2loadArgs(bin, args, { logFile, connections, streams }) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`h2load exited ${code}: ${err}\n${out}`));
      const num = (re) => Number(re.exec(out)?.[1] ?? NaN);
      const finishedS = num(/finished in ([\d.]+)s/);
      const reqPerS = num(/finished in [\d.]+s, ([\d.]+) req\/s/);
      const succeeded = num(/(\d+) succeeded/);
      const failed = num(/(\d+) failed/);
      const errored = num(/(\d+) errored/);
      const status2xx = num(/status codes: (\d+) 2xx/);
      const rows = readFileSync(logFile, 'utf8').trim().split('\n');
      const latMs = [];
      let non200 = 0;
      let incomplete = 0;
      const statuses = {};
      for (const row of rows) {
        const cols = row.split('\t');
        if (cols.length < 3) continue;
        const status = Number(cols[1]);
        // Streams cut off when the duration ends are logged without a status (≤ 0).
        if (!(status > 0)) {
          incomplete++;
          continue;
        }
        if (status !== 200) non200++;
        statuses[status] = (statuses[status] ?? 0) + 1;
        latMs.push(Number(cols[2]) / 1000);
      }
      resolve({
        driver: 'h2load',
        connections,
        streams,
        seconds: finishedS,
        rps: reqPerS,
        succeeded,
        failed,
        errored,
        status2xx,
        non200,
        statuses,
        incomplete,
        latency: latencyStats(latMs),
        raw: out,
        args,
      });
    });
  });
}

export function writeBodyFile(file, body) {
  writeFileSync(file, body);
}
