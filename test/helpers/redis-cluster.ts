import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './redis.js';
import { sleep } from './wait.js';

// A throw-away local Redis Cluster: six redis-server processes (three masters, three
// replicas) on free ports, no persistence, a 1 s cluster-node-timeout so a replica takes
// over a dead master within a few seconds. Suites call startRedisCluster() and skip
// visibly when it returns undefined (reason in redisClusterSkipReason); under CI=true a
// missing binary is an error instead, so CI never passes by skipping.

export let redisClusterSkipReason = '';

export interface ClusterNodeProcess {
  readonly port: number;
  readonly child: ChildProcess;
}

export interface LocalRedisCluster {
  readonly nodes: ClusterNodeProcess[];
  /** "127.0.0.1:port" of every node. */
  readonly seeds: string[];
  /** The node currently serving `key` as master. */
  masterFor(key: string): Promise<ClusterNodeProcess>;
  /** Resolves once the replica of the master serving `key` holds it (replication is asynchronous). */
  waitReplicated(key: string, timeoutMs: number): Promise<boolean>;
  /** SIGKILLs one node (a crash, not a clean shutdown). */
  kill(node: ClusterNodeProcess): Promise<void>;
  /** Resolves once every live node says cluster_state:ok and every replica is in sync (false after timeoutMs). */
  waitUntilOk(timeoutMs: number): Promise<boolean>;
  stop(): Promise<void>;
}

function binaryMissing(): string | undefined {
  for (const bin of ['redis-server', 'redis-cli']) {
    try {
      if (spawnSync(bin, ['--version'], { stdio: 'ignore' }).status !== 0) return `${bin} does not run`;
    } catch {
      return `${bin} is not on PATH`;
    }
  }
  return undefined;
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

/** cluster_state:ok, and for a replica, its link to its master is up (it can take over). */
async function clusterOk(port: number): Promise<boolean> {
  try {
    if (!String(await command(port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
    const repl = String(await command(port, 'INFO', 'replication'));
    return repl.includes('role:master') || repl.includes('master_link_status:up');
  } catch {
    return false;
  }
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Starts a six-node cluster, or undefined (see redisClusterSkipReason). */
export async function startRedisCluster(): Promise<LocalRedisCluster | undefined> {
  const missing = binaryMissing();
  if (missing) {
    redisClusterSkipReason = `no local Redis Cluster: ${missing}`;
    if (process.env.CI === 'true') throw new Error(`${redisClusterSkipReason} (CI=true: not skipping)`);
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), 'authz-redis-cluster-'));
  const nodes: ClusterNodeProcess[] = [];
  // If the test process dies without afterAll, take the servers with it.
  const onExit = () => {
    for (const n of nodes) if (n.child.exitCode === null) n.child.kill('SIGKILL');
  };
  process.once('exit', onExit);
  const stop = async () => {
    process.off('exit', onExit);
    await Promise.all(
      nodes.map(async (n) => {
        if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill('SIGKILL');
        await waitExit(n.child);
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 6; i++) {
      const port = await freePort();
      // The bus port defaults to port + 10000, which may be taken or beyond 65535.
      const busPort = await freePort();
      const child = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-port',
          String(busPort),
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          '1000',
          '--dir',
          dir,
          '--save',
          '',
          '--appendonly',
          'no',
          // Replicas sync at once (the default waits 5 s): a replica that never synced
          // refuses to take over its master.
          '--repl-diskless-sync-delay',
          '0',
        ],
        { stdio: 'ignore' },
      );
      nodes.push({ port, child });
    }
    const deadline = Date.now() + 10_000;
    for (const n of nodes) {
      for (;;) {
        if (n.child.exitCode !== null)
          throw new Error(`redis-server on port ${n.port} exited (${n.child.exitCode})`);
        try {
          if ((await command(n.port, 'PING')) === 'PONG') break;
        } catch {
          /* not up yet */
        }
        if (Date.now() > deadline) throw new Error(`redis-server on port ${n.port} did not start`);
        await sleep(50);
      }
    }
    const seeds = nodes.map((n) => `127.0.0.1:${n.port}`);
    const created = spawnSync(
      'redis-cli',
      ['--cluster', 'create', ...seeds, '--cluster-replicas', '1', '--cluster-yes'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (created.status !== 0)
      throw new Error(`redis-cli --cluster create failed: ${(created.stdout + created.stderr).slice(-500)}`);
    const cluster: LocalRedisCluster = {
      nodes,
      seeds,
      async waitUntilOk(timeoutMs) {
        const until = Date.now() + timeoutMs;
        while (Date.now() < until) {
          const live = nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null);
          const states = await Promise.all(live.map((n) => clusterOk(n.port)));
          if (states.every(Boolean)) return true;
          await sleep(100);
        }
        return false;
      },
      async masterFor(key) {
        const live = nodes.filter((n) => n.child.exitCode === null && n.child.signalCode === null);
        const slot = Number(await command(live[0]!.port, 'CLUSTER', 'KEYSLOT', key));
        const slots = (await command(live[0]!.port, 'CLUSTER', 'SLOTS')) as [
          number,
          number,
          [string, number],
        ][];
        const range = slots.find(([from, to]) => slot >= from && slot <= to);
        if (!range) throw new Error(`no node serves slot ${slot}`);
        const port = Number(range[2][1]);
        const node = nodes.find((n) => n.port === port);
        if (!node) throw new Error(`slot ${slot} is served by unknown port ${port}`);
        return node;
      },
      async waitReplicated(key, timeoutMs) {
        const master = await cluster.masterFor(key);
        const id = String(await command(master.port, 'CLUSTER', 'MYID'));
        const lines = String(await command(master.port, 'CLUSTER', 'NODES')).split('\n');
        const replica = lines.map((l) => l.split(' ')).find((f) => f[3] === id);
        if (!replica) throw new Error(`no replica of ${master.port}`);
        const port = Number(/:(\d+)@/.exec(replica[1]!)![1]);
        const c = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0 });
        try {
          await c.call('READONLY');
          const end = Date.now() + timeoutMs;
          while (Date.now() < end) {
            if ((await c.exists(key)) === 1) return true;
            await sleep(20);
          }
          return false;
        } finally {
          c.disconnect();
        }
      },
      async kill(node) {
        node.child.kill('SIGKILL');
        await waitExit(node.child);
      },
      stop,
    };
    if (!(await cluster.waitUntilOk(20_000))) throw new Error('the cluster did not reach cluster_state:ok');
    return cluster;
  } catch (err) {
    await stop();
    throw err;
  }
}
