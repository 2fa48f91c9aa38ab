import { afterEach, describe, expect, it } from 'vitest';
import { loadConfigObject } from '../../src/config/load.js';
import { cryptoOffload, setCryptoOffload } from '../../src/crypto/offload.js';
import { Metrics } from '../../src/observability/metrics.js';
import { Runtime } from '../../src/server/runtime.js';
import { captureLogger } from '../helpers/logger.js';

// server.crypto_offload reaches the process-wide policy when a runtime goes live, and a
// runtime that is only built (a reload that is then refused) changes nothing.

const base = { issuers: [], rules: [{ name: 'all', match: { path_prefix: '/' }, action: 'allow' }] };

async function runtime(server: Record<string, unknown>): Promise<Runtime> {
  const { logger } = captureLogger();
  return Runtime.build(loadConfigObject({ ...base, server }, process.cwd()), {
    logger,
    metrics: new Metrics({ processMetrics: false }),
  });
}

describe('server.crypto_offload', () => {
  afterEach(() => setCryptoOffload('always'));

  it('defaults to the thread pool, and a started runtime applies its setting', async () => {
    const def = await runtime({});
    await def.start();
    expect(cryptoOffload()).toBe('always');
    await def.close();

    const auto = await runtime({ crypto_offload: 'auto' });
    expect(cryptoOffload()).toBe('always'); // built, not yet live
    await auto.start();
    expect(cryptoOffload()).toBe('auto');
    await auto.close();
  });

  it('refuses a value it does not know, naming the field', () => {
    expect(() =>
      loadConfigObject({ ...base, server: { crypto_offload: 'sometimes' } }, process.cwd()),
    ).toThrow(/server\.crypto_offload/);
  });
});
