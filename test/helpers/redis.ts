import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, Socket } from 'node:net';

// Where the Redis-backed suites get a Redis from:
//   1. REDIS_URL when set;
//   2. else a private `redis-server` (if on PATH) on a free port, no persistence;
//   3. else a testcontainers `redis:7` container;
//   4. else undefined, with the reason in `redisSkipReason` — suites then print
//      "[redis] SKIPPED: …" and skip visibly (describe.skipIf). Under CI=true it is an
//      error instead, so CI never passes by skipping the Redis suites.

export interface RedisHandle {
  readonly url: string;
  stop(): Promise<void>;
}

export let redisSkipReason = '';

/** A free TCP port on 127.0.0.1 (released before returning). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export function redisServerOnPath(): boolean {
  try {
    return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
  } catch {
    return false;
  }
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = new Socket();
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('error', () => done(false));
    sock.connect(port, '127.0.0.1', () => sock.write('PING\r\n'));
    sock.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

/** A dedicated redis-server process (never the shared instance); stop() and start() it at will. */
export class RedisServerProcess {
  private child: ChildProcess | undefined;

  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null;
  }

  /** Starts a redis-server on `port` (default: a free one) and waits until it answers PING. */
  static async start(port?: number): Promise<RedisServerProcess> {
    const p = new RedisServerProcess(port ?? (await freePort()));
    await p.start();
    return p;
  }

  async start(): Promise<void> {
    if (this.running) return;
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' },
    );
    this.child = child;
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (child.exitCode !== null)
        throw new Error(`redis-server on port ${this.port} exited (${child.exitCode})`);
      if (await ping(this.port)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    await this.stop();
    throw new Error(`redis-server on port ${this.port} did not start in time`);
  }

  /** Stops this process (SIGKILL-free: SIGTERM, then waits for exit). */
  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }, 3000).unref();
    });
  }
}

/** A Redis URL for the Redis-backed suites, or undefined (see redisSkipReason). */
export async function getRedisUrl(): Promise<RedisHandle | undefined> {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, stop: async () => undefined };
  const reasons: string[] = [];
  if (redisServerOnPath()) {
    try {
      const p = await RedisServerProcess.start();
      return { url: p.url, stop: () => p.stop() };
    } catch (err) {
      reasons.push(`redis-server failed: ${(err as Error).message}`);
    }
  } else {
    reasons.push('redis-server is not on PATH');
  }
  try {
    const { GenericContainer } = await import('testcontainers');
    const container = await new GenericContainer('redis:7').withExposedPorts(6379).start();
    return {
      url: `redis://${container.getHost()}:${container.getMappedPort(6379)}`,
      stop: async () => {
        await container.stop();
      },
    };
  } catch (err) {
    reasons.push(`testcontainers failed: ${(err as Error).message.split('\n')[0]}`);
  }
  redisSkipReason = `no Redis: REDIS_URL is not set; ${reasons.join('; ')}`;
  if (process.env.CI === 'true') throw new Error(`${redisSkipReason} (CI=true: not skipping)`);
  return undefined;
}

/** A key prefix no other test run uses. */
export function uniquePrefix(label = 'test'): string {
  return `envoy-jwt-authz-test:${label}:${process.pid}:${randomBytes(4).toString('hex')}:`;
}
