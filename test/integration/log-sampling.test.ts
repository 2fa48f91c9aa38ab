// Per-decision log lines under a flood: per denial reason, only the first
// log.denials_per_second lines of each second are written; the rest are counted in
// authz_log_suppressed_total{reason} and summed up in one line when the second ends.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startTestService, type TestService } from '../helpers/harness.js';
import { generateEcKeyPair, makeJwks } from '../helpers/keys.js';

const ISS = 'https://idp.example.com';
let svc: TestService | undefined;

async function start(denialsPerSecond?: number): Promise<TestService> {
  const key = generateEcKeyPair({ kid: 'k1' });
  return startTestService(
    {
      issuers: [{ name: 'corp', issuer: ISS, audiences: ['api://orders'], jwks: makeJwks(key) }],
      default_action: 'authenticate',
      log: {
        level: 'info',
        ...(denialsPerSecond !== undefined ? { denials_per_second: denialsPerSecond } : {}),
      },
    },
    { logLevel: 'info' },
  );
}

const denied = (s: TestService, reason: string) =>
  s.logs.lines.filter((l) => l.msg === 'check denied' && l.reason === reason).length;

async function suppressedMetric(s: TestService, reason: string): Promise<number> {
  const text = await (await fetch(`${s.httpUrl}/metrics`)).text();
  const m = new RegExp(`^authz_log_suppressed_total\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

afterEach(async () => {
  vi.useRealTimers();
  await svc?.close();
  svc = undefined;
});

describe('denial log sampling', () => {
  it('writes the first N lines per reason per second, counts the rest, and sums them up', async () => {
    svc = await start(3);
    // Only the clock is frozen (the gRPC client and server keep their real timers).
    vi.useFakeTimers({ toFake: ['Date'] });
    for (let i = 0; i < 10; i++) expect((await svc.check({})).reason).toBe('token_missing');
    for (let i = 0; i < 5; i++)
      expect((await svc.check({ token: 'not-a-jwt' })).reason).toBe('token_malformed');

    expect(denied(svc, 'token_missing')).toBe(3);
    expect(denied(svc, 'token_malformed')).toBe(3);
    expect(await suppressedMetric(svc, 'token_missing')).toBe(7);
    expect(await suppressedMetric(svc, 'token_malformed')).toBe(2);
    // Every decision is still counted.
    const text = await (await fetch(`${svc.httpUrl}/metrics`)).text();
    expect(text).toMatch(/authz_check_total\{decision="deny",reason="token_missing",issuer=""\} 10/);

    // The next second: a fresh budget, and one line for what the last one suppressed.
    vi.setSystemTime(Date.now() + 1500);
    await svc.check({});
    expect(denied(svc, 'token_missing')).toBe(4);
    const summary = svc.logs.lines.filter((l) => l.msg.startsWith('check denied lines suppressed'));
    expect(summary).toHaveLength(1);
    expect(summary[0]!.suppressed).toEqual({ token_missing: 7, token_malformed: 2 });
    expect(summary[0]!.level).toBe('info');
  });

  it('the summary is written when the second ends even if no denial follows', async () => {
    svc = await start(1);
    vi.useFakeTimers({ toFake: ['Date'] });
    for (let i = 0; i < 4; i++) await svc.check({});
    expect(denied(svc, 'token_missing')).toBe(1);
    // No further request: the window's own timer (real) writes the summary.
    await vi.waitFor(
      () => {
        const summary = svc!.logs.lines.filter((l) => l.msg.startsWith('check denied lines suppressed'));
        expect(summary.map((l) => l.suppressed)).toEqual([{ token_missing: 3 }]);
      },
      { timeout: 3000, interval: 50 },
    );
  });

  it('denials_per_second: 0 writes every line', async () => {
    svc = await start(0);
    vi.useFakeTimers({ toFake: ['Date'] });
    for (let i = 0; i < 30; i++) await svc.check({});
    expect(denied(svc, 'token_missing')).toBe(30);
    expect(await suppressedMetric(svc, 'token_missing')).toBe(0);
  });

  it('defaults to 20 lines per reason per second', async () => {
    svc = await start();
    vi.useFakeTimers({ toFake: ['Date'] });
    for (let i = 0; i < 25; i++) await svc.check({});
    expect(denied(svc, 'token_missing')).toBe(20);
    expect(await suppressedMetric(svc, 'token_missing')).toBe(5);
  });
});
