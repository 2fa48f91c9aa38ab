import { describe, expect, it } from 'vitest';
import { listenHostPort, parseHostPort, splitHostPort } from '../../../src/core/address.js';
import { addressProblem } from '../../../src/config/sections/server.js';

// The four host:port readers this module replaced, as they were, to hold the merged
// one to the same answers on a generated corpus.
const OLD_REDIS_NODE = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]/]+)):(\d{1,5})$/;
const OLD_CONFIG_CHECK = /^(?:\[([^\]]*)\]|([^:[\]]*)):([^:]*)$/;
const OLD_LISTEN = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/;

function oldRedisNode(s: string): { host: string; port: number } | undefined {
  const m = OLD_REDIS_NODE.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

function oldListen(s: string): { host: string; port: number } | undefined {
  const m = OLD_LISTEN.exec(s);
  return m ? { host: m[1] ?? (m[2] || '0.0.0.0'), port: Number(m[3]) } : undefined;
}

/** A seeded generator of short address-like strings. */
function corpus(n: number): string[] {
  let seed = 0x2545f491;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const alphabet = [
    '[',
    ']',
    ':',
    ':',
    '1',
    '0',
    '9',
    'a',
    'F',
    '.',
    '-',
    '/',
    ' ',
    'x',
    '65535',
    '65536',
    '::1',
  ];
  const out = [
    '127.0.0.1:9001',
    '[::1]:6379',
    '[::]:0',
    ':9001',
    '[]:80',
    'redis:0',
    'redis:65536',
    'host:',
    'a]b:80',
    '[x]y:80',
    'a b:1',
    'a/b:1',
    '[::1]',
    '::1:80',
    'localhost:6379',
    '[fe80::1%eth0]:1',
    '0.0.0.0:00080',
    'example.com:443',
    '[::ffff:127.0.0.1]:8080',
    'a-b.c:1',
    '10.0.0.1:65535',
    '[2001:db8::1]:9001',
  ];
  for (let i = 0; i < n; i++) {
    let s = '';
    for (let len = Math.floor(rnd() * 8); len >= 0; len--) s += alphabet[Math.floor(rnd() * alphabet.length)];
    out.push(s);
  }
  return out;
}

describe('host:port addresses', () => {
  const inputs = corpus(20_000);

  it('Redis nodes: the same answers as the old store reader', () => {
    for (const s of inputs) expect(parseHostPort(s), JSON.stringify(s)).toEqual(oldRedisNode(s));
  });

  it('config check: the same split as the old listen-address check', () => {
    for (const s of inputs) {
      const m = OLD_CONFIG_CHECK.exec(s);
      const a = splitHostPort(s);
      expect(a && [a.bracketed ? a.host : undefined, a.bracketed ? undefined : a.host, a.port]).toEqual(
        m ? [m[1], m[2], m[3]] : undefined,
      );
    }
  });

  it('listeners: the same answers as the old listener reader for every address the config check accepts', () => {
    let accepted = 0;
    for (const s of inputs) {
      if (addressProblem(s, false) !== undefined) continue;
      accepted++;
      expect(listenHostPort(s), JSON.stringify(s)).toEqual(oldListen(s));
    }
    expect(accepted).toBeGreaterThan(12);
  });

  it('listeners: an empty host is every interface; brackets only around the host', () => {
    expect(listenHostPort(':9001')).toEqual({ host: '0.0.0.0', port: 9001 });
    expect(listenHostPort('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(listenHostPort('[]:80')).toBeUndefined();
    expect(listenHostPort('host:x')).toBeUndefined();
    // The old reader took these (a host name with brackets in it); the config check
    // never let them through, and the listeners now refuse them too.
    expect(oldListen('a]b:80')).toEqual({ host: 'a]b', port: 80 });
    expect(listenHostPort('a]b:80')).toBeUndefined();
  });
});
