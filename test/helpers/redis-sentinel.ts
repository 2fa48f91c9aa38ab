import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './redis.js';
import { sleep } from './wait.js';

// A throw-away Sentinel setup: one master, one replica, one sentinel (quorum 1) watching
// them as "mymaster", with a 1 s down-after so a failover completes within seconds.
// `redis-server --sentinel` is the sentinel (redis-sentinel is the same binary). Suites
// skip visibly when it returns undefined (reason in redisSentinelSkipReason); under
// CI=true a missing binary is an error instead.

export let redisSentinelSkipReason = '';

export interface LocalSentinel {
  readonly name: string;
  readonly sentinel: string;
  readonly masterPort: number;
  readonly replicaPort: number;
  /** SIGKILLs the current master. */
  killMaster(): Promise<void>;
  /** The master's port as the sentinel reports it now. */
  currentMasterPort(): Promise<number>;
  stop(): Promise<void>;
}

async function command(port: number, ...args: string[]): Promise<unknown> {
  const c = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  c.on('error', () => undefined);
  try {
    await c.connect();
    return await c.call(args[0]!, ...args.slice(1));
  } finally {
    c.disconnect();
  }
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function until(what: string, timeoutMs: number, ok: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    try {
      if (await ok()) return;
    } catch {
      /* not yet */
    }
    await sleep(100);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

export async function startRedisSentinel(): Promise<LocalSentinel | undefined> {
  let reason: string | undefined;
  try {
    if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0)
      reason = 'redis-server does not run';
  } catch {
    reason = 'redis-server is not on PATH';
  }
  if (reason) {
    redisSentinelSkipReason = `no local Redis Sentinel: ${reason}`;
    if (process.env.CI === 'true') throw new Error(`${redisSentinelSkipReason} (CI=true: not skipping)`);
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), 'authz-redis-sentinel-'));
  const children: ChildProcess[] = [];
  // If the test process dies without afterAll, take the servers with it.
  const onExit = () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  };
  process.once('exit', onExit);
  const stop = async () => {
    process.off('exit', onExit);
    await Promise.all(
      children.map(async (c) => {
        if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
        await waitExit(c);
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const [masterPort, replicaPort, sentinelPort] = [await freePort(), await freePort(), await freePort()];
    const server = (port: number, extra: string[]) => {
      const c = spawn(
        'redis-server',
        ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]
          .concat(['--repl-diskless-sync-delay', '0'])
          .concat(extra),
        { stdio: 'ignore' },
      );
      children.push(c);
      return c;
    };
    const master = server(masterPort, []);
    const replica = server(replicaPort, ['--replicaof', '127.0.0.1', String(masterPort)]);
    await until('master and replica start', 10_000, async () =>
      String(await command(replicaPort, 'INFO', 'replication')).includes('master_link_status:up'),
    );
    const conf = join(dir, 'sentinel.conf');
    writeFileSync(
      conf,
      [
        `port ${sentinelPort}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor mymaster 127.0.0.1 ${masterPort} 1`,
        'sentinel down-after-milliseconds mymaster 1000',
        'sentinel failover-timeout mymaster 5000',
        '',
      ].join('\n'),
    );
    const sentinel = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
    children.push(sentinel);
    const currentMasterPort = async () =>
      Number(
        ((await command(sentinelPort, 'SENTINEL', 'get-master-addr-by-name', 'mymaster')) as string[])[1],
      );
    await until('the sentinel sees the master and its replica', 10_000, async () => {
      if (sentinel.exitCode !== null)
        throw new Error(`redis-server --sentinel exited (${sentinel.exitCode})`);
      const replicas = (await command(sentinelPort, 'SENTINEL', 'replicas', 'mymaster')) as unknown[];
      return (await currentMasterPort()) === masterPort && replicas.length === 1;
    });
    return {
      name: 'mymaster',
      sentinel: `127.0.0.1:${sentinelPort}`,
      masterPort,
      replicaPort,
      currentMasterPort,
      async killMaster() {
        const killed = (await currentMasterPort()) === masterPort ? master : replica;
        killed.kill('SIGKILL');
        await waitExit(killed);
      },
      stop,
    };
  } catch (err) {
    await stop();
    if (process.env.CI === 'true') throw err;
    redisSentinelSkipReason = `no local Redis Sentinel: ${(err as Error).message}`;
    return undefined;
  }
}
