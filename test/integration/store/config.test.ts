import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfigFile, parseHostPort, validateConfig } from '../../../src/config/load.js';
import { ConfigError } from '../../../src/core/errors.js';
import { createLogger } from '../../../src/observability/logger.js';
import { createStore, RedisStore } from '../../../src/store/index.js';
import { freePort, redisServerOnPath } from '../../helpers/redis.js';

const issuer = {
  name: 'corp',
  issuer: 'https://idp.example.com',
  audiences: ['api'],
  jwks_uri: 'https://idp.example.com/jwks',
};

function problems(store: unknown): string[] {
  try {
    validateConfig({ issuers: [issuer], store }, {});
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

const dir = mkdtempSync(join(tmpdir(), 'authz-store-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('store config: Redis topologies', () => {
  it('a single node by default; redis_url only when nothing else is set', () => {
    expect(validateConfig({ issuers: [issuer], store: { type: 'redis' } }, {}).store).toMatchObject({
      type: 'redis',
      redis_url: 'redis://127.0.0.1:6379',
    });
    const cluster = validateConfig(
      { issuers: [issuer], store: { type: 'redis', redis: { cluster: ['10.0.0.1:7000', '[::1]:7001'] } } },
      {},
    ).store;
    expect(cluster.redis_url).toBeUndefined();
    expect(cluster.redis).toEqual({ cluster: ['10.0.0.1:7000', '[::1]:7001'] });
    const sentinel = validateConfig(
      { issuers: [issuer], store: { type: 'redis', redis: { sentinels: ['s1:26379'], name: 'mymaster' } } },
      {},
    ).store;
    expect(sentinel.redis).toEqual({ sentinels: ['s1:26379'], name: 'mymaster' });
  });

  it('exactly one of redis_url, redis.cluster, redis.sentinels', () => {
    expect(problems({ type: 'redis', redis_url: 'redis://a:6379', redis: { cluster: ['a:7000'] } })).toEqual([
      'store.redis.cluster: only one of redis_url, redis.cluster, redis.sentinels may be set, got redis_url, redis.cluster',
    ]);
    expect(problems({ redis: { cluster: ['a:7000'], sentinels: ['b:26379'], name: 'm' } })).toEqual([
      'store.redis.sentinels: only one of redis_url, redis.cluster, redis.sentinels may be set, got redis.cluster, redis.sentinels',
    ]);
  });

  it('names the field of every malformed entry', () => {
    expect(
      problems({ type: 'redis', redis: { cluster: ['a:7000', 'nope', 'b:0', 'c:70000', 'http://x:1'] } }),
    ).toEqual([
      'store.redis.cluster[1]: must be host:port, got "nope"',
      'store.redis.cluster[2]: must be host:port, got "b:0"',
      'store.redis.cluster[3]: must be host:port, got "c:70000"',
      'store.redis.cluster[4]: must be host:port, got "http://x:1"',
    ]);
    expect(problems({ type: 'redis', redis: { cluster: [] } })).toEqual([
      'store.redis.cluster: must not be empty',
    ]);
    expect(problems({ type: 'redis', redis: { sentinels: ['s:26379'] } })).toEqual([
      'store.redis.name: required with redis.sentinels (the name of the monitored master)',
    ]);
    expect(problems({ type: 'redis', redis: { name: 'm', cluster: ['a:1'] } })).toEqual([
      'store.redis.name: only applies with redis.sentinels',
    ]);
    expect(problems({ type: 'redis', redis: { cluster: ['a:1'], sentinel_password_file: 'x' } })).toEqual([
      'store.redis.sentinel_password_file: only applies with redis.sentinels',
    ]);
    expect(problems({ type: 'redis', redis: { cluster: ['a:1'], password: 'inline' } })).toEqual([
      expect.stringMatching(/^store\.redis\.password: unknown key/),
    ]);
    expect(problems({ type: 'redis', key_prefix: 'app{1}:', redis: { cluster: ['a:1'] } })).toEqual([
      'store.key_prefix: must not contain "{" or "}" with redis.cluster',
    ]);
  });

  it('parses host:port, IPv6 in brackets', () => {
    expect(parseHostPort('redis-0.redis:6379')).toEqual({ host: 'redis-0.redis', port: 6379 });
    expect(parseHostPort('[fd00::1]:7000')).toEqual({ host: 'fd00::1', port: 7000 });
    expect(parseHostPort('fd00::1:7000')).toBeUndefined();
    expect(parseHostPort('host')).toBeUndefined();
  });

  it('password files are relative to the config file, read when the store is created, errors name the field', () => {
    const file = join(dir, 'config.yaml');
    writeFileSync(
      file,
      `issuers: [{name: corp, issuer: "https://idp", audiences: [api], jwks_uri: "https://idp/jwks"}]\n` +
        `store: {type: redis, redis: {cluster: ["127.0.0.1:1"], password_file: secrets/redis-password}}\n`,
    );
    const { config } = loadConfigFile(file, {});
    expect(config.store.redis!.password_file).toBe(join(dir, 'secrets/redis-password'));
    const logger = createLogger('silent');
    expect(() => createStore(config.store, { logger })).toThrow(ConfigError);
    try {
      createStore(config.store, { logger });
    } catch (err) {
      expect((err as ConfigError).problems).toEqual(['store.redis.password_file: cannot read: ENOENT']);
    }
    const empty = join(dir, 'empty');
    writeFileSync(empty, '\n');
    expect(() =>
      createStore({ ...config.store, redis: { cluster: ['127.0.0.1:1'], password_file: empty } }, { logger }),
    ).toThrow(/store\.redis\.password_file: the file is empty/);
  });

  it('builds a cluster or sentinel client from the config', async () => {
    const logger = createLogger('silent');
    const c = createStore(
      { type: 'redis', purge_interval_seconds: 60, key_prefix: 'x:', redis: { cluster: ['127.0.0.1:1'] } },
      { logger },
    ) as RedisStore;
    const s = createStore(
      {
        type: 'redis',
        purge_interval_seconds: 60,
        key_prefix: 'x:',
        redis: { sentinels: ['127.0.0.1:1'], name: 'm' },
      },
      { logger },
    ) as RedisStore;
    try {
      expect(c.topology).toBe('cluster');
      expect(s.topology).toBe('sentinel');
      // Nothing listens on port 1: not ready, and calls fail at once instead of queueing.
      const t0 = Date.now();
      await expect(c.isJtiRevoked('j')).rejects.toThrow(/token store/);
      await expect(s.hit('k', 1, 1)).rejects.toThrow(/token store/);
      expect(Date.now() - t0).toBeLessThan(200);
    } finally {
      await c.close();
      await s.close();
    }
  });
});

describe.skipIf(!redisServerOnPath())('store config: password from a file (dedicated redis-server)', () => {
  it('authenticates with the file content and never logs it', async () => {
    const password = 'pw-' + Math.random().toString(36).slice(2);
    const port = await freePort();
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--requirepass',
        password,
      ],
      { stdio: 'ignore' },
    );
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const logger = createLogger('debug', sink);
    const good = join(dir, 'pw');
    writeFileSync(good, `${password}\n`);
    const bad = join(dir, 'bad-pw');
    writeFileSync(bad, 'wrong');
    const url = `redis://127.0.0.1:${port}`;
    const base = { type: 'redis' as const, purge_interval_seconds: 60, key_prefix: 'pw:', redis_url: url };
    const ok = createStore({ ...base, redis: { password_file: good } }, { logger }) as RedisStore;
    const denied = createStore({ ...base, redis: { password_file: bad } }, { logger }) as RedisStore;
    try {
      expect(await ok.waitUntilReady(5000)).toBe(true);
      expect(await ok.rememberOnce('x', 10)).toBe(true);
      expect(await denied.waitUntilReady(1500)).toBe(false);
      await expect(denied.rememberOnce('x', 10)).rejects.toThrow(/token store/);
      expect(lines.join('')).toContain('token store connected');
      expect(lines.join('')).not.toContain(password);
    } finally {
      await ok.close();
      await denied.close();
      child.kill('SIGTERM');
    }
  });
});
