import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { secondsToMs, systemClock, type Clock, type EpochMs } from '../core/time.js';
import type { Logger } from '../observability/logger.js';

// server.workers > 1: the primary forks N workers that each run the whole service
// and share the gRPC and HTTP listening sockets (node:cluster hands accepted
// connections out round-robin). The primary runs no checks: it restarts workers
// that die, forwards SIGHUP (each worker reloads the file and keeps its old config
// if the new one is invalid) and SIGTERM, and aggregates /metrics across workers.

const METRICS_REQUEST = 'envoy-jwt-authz:metrics-request';
const METRICS_RESPONSE = 'envoy-jwt-authz:metrics-response';

export function isClusterWorker(): boolean {
  return cluster.isWorker;
}

export async function runPrimary(
  workers: number,
  logger: Logger,
  graceSeconds: number,
  clock: Clock = systemClock,
): Promise<void> {
  const aggregator = new AggregatorRegistry();
  let stopping = false;
  const restarts: EpochMs[] = [];

  const fork = (): Worker => {
    const worker = cluster.fork();
    worker.on('message', (msg: { type?: string; id?: number }) => {
      if (msg?.type !== METRICS_REQUEST) return;
      aggregator
        .clusterMetrics()
        .then((text) => worker.send({ type: METRICS_RESPONSE, id: msg.id, text }))
        .catch((err: Error) => worker.send({ type: METRICS_RESPONSE, id: msg.id, error: err.message }));
    });
    return worker;
  };

  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    const now = clock.nowMs();
    restarts.push(now);
    while (restarts.length > 0 && restarts[0]! < now - 60_000) restarts.shift();
    logger.error({ pid: worker.process.pid, code, signal }, 'worker exited; starting a new one');
    if (restarts.length > workers * 5) {
      logger.fatal('workers keep dying (more than 5 per worker in a minute); giving up');
      process.exit(1);
    }
    setTimeout(fork, 500).unref();
  });

  for (let i = 0; i < workers; i++) fork();
  logger.info({ workers }, 'cluster primary started');

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping workers');
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    const deadline = setTimeout(() => process.exit(0), secondsToMs(graceSeconds + 5));
    deadline.unref();
    const check = setInterval(() => {
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        clearInterval(check);
        process.exit(0);
      }
    }, 100);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGHUP');
  });
}

let nextId = 0;
const pending = new Map<number, (text: string | undefined) => void>();
let listening = false;

/** In a worker: metrics of every worker, aggregated by the primary (undefined if it did not answer). */
export function clusterMetricsFromPrimary(timeoutMs = 2000): Promise<string | undefined> {
  if (!cluster.isWorker || !process.send) return Promise.resolve(undefined);
  if (!listening) {
    listening = true;
    process.on('message', (msg: { type?: string; id?: number; text?: string }) => {
      if (msg?.type !== METRICS_RESPONSE || msg.id === undefined) return;
      pending.get(msg.id)?.(msg.text);
      pending.delete(msg.id);
    });
  }
  const id = nextId++;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      pending.delete(id);
      resolve(undefined);
    }, timeoutMs);
    pending.set(id, (text) => {
      clearTimeout(timer);
      resolve(text);
    });
    process.send!({ type: METRICS_REQUEST, id });
  });
}

/** In a worker: let the primary's AggregatorRegistry read this registry. */
export function shareRegistryWithPrimary(registry: import('prom-client').Registry): void {
  if (!cluster.isWorker) return;
  // Constructing one installs prom-client's worker-side listener for the primary's requests.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
}
