import { describe, expect, it } from 'vitest';
import { KeySetError } from '../../../src/authn/keys/jwk.js';
import { KeyLoadError } from '../../../src/authn/keys/local-source.js';
import { ExpressionBudgetError, ExpressionError } from '../../../src/authz/expressions.js';
import { UsageError } from '../../../src/cli/args.js';
import { StartupError } from '../../../src/cli/startup.js';
import { AuthzError, ConfigError } from '../../../src/core/errors.js';
import { FetchError } from '../../../src/net/safe-fetch.js';
import { OAuthError } from '../../../src/oauth/answers.js';
import { StoreUnavailableError } from '../../../src/store/token-store.js';

describe('error codes', () => {
  const errors: [AuthzError, string, string][] = [
    [new ConfigError(['a: b']), 'ERR_CONFIG_INVALID', 'invalid configuration:\n  - a: b'],
    [new FetchError('timeout'), 'ERR_FETCH_FAILED', 'timeout'],
    [new KeySetError('no keys'), 'ERR_JWKS_INVALID', 'no keys'],
    [new KeyLoadError('unreadable'), 'ERR_KEYS_LOAD_FAILED', 'unreadable'],
    [new ExpressionError('no such key'), 'ERR_EXPRESSION_EVALUATION', 'no such key'],
    [new ExpressionBudgetError(10), 'ERR_EXPRESSION_BUDGET_EXCEEDED', 'evaluation budget of 10 ms exceeded'],
    [new StoreUnavailableError(), 'ERR_STORE_UNAVAILABLE', 'the token store is unavailable'],
    [new StartupError(['x', 'y']), 'ERR_STARTUP', 'x\ny'],
    [new UsageError('bad'), 'ERR_USAGE', 'bad'],
    [new OAuthError('invalid_grant', 'expired'), 'invalid_grant', 'expired'],
  ];

  it.each(errors)('%s has its own code; the message is unchanged', (err, code, message) => {
    expect(err).toBeInstanceOf(AuthzError);
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe(code);
    expect(err.message).toBe(message);
  });

  it('no two classes share a code', () => {
    expect(new Set(errors.map(([, code]) => code)).size).toBe(errors.length);
  });

  it('a subclass keeps its parent for instanceof', () => {
    expect(new ExpressionBudgetError(1)).toBeInstanceOf(ExpressionError);
  });
});
