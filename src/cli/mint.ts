import { readFileSync } from 'node:fs';
import type { JWK } from 'jose';
import { ConfigError } from '../core/errors.js';
import { signJws } from '../crypto/sign.js';
import { loadSigningKeys } from '../crypto/signing-keys.js';
import { createLogger } from '../observability/logger.js';
import { parseOptions, UsageError } from './args.js';
import { nowSeconds, secondsToMs, wholeSeconds } from '../core/time.js';

const DEFAULT_TTL = 300;

/** The `mint` command: sign a token with a key file (for testing). */
export async function mintCommand(args: string[]): Promise<void> {
  const { values } = parseOptions(args, {
    key: { type: 'string' },
    claims: { type: 'string' },
    ttl: { type: 'string' },
    alg: { type: 'string' },
    typ: { type: 'string' },
  });
  const keyFile = values.key as string | undefined;
  if (!keyFile) throw new UsageError('mint needs --key FILE (a private JWK or PKCS#8 PEM)');
  let claims: Record<string, unknown> = {};
  if (values.claims !== undefined) {
    try {
      claims = JSON.parse(values.claims as string);
    } catch {
      throw new UsageError('--claims must be a JSON object');
    }
    if (typeof claims !== 'object' || claims === null || Array.isArray(claims))
      throw new UsageError('--claims must be a JSON object');
  }
  // A negative TTL makes a token that has already expired (for testing a service's refusal).
  const ttl = values.ttl === undefined ? DEFAULT_TTL : Number(values.ttl);
  if (!Number.isInteger(ttl) || ttl === 0)
    throw new UsageError(
      '--ttl must be a whole number of seconds other than 0 (negative: a token that has already expired)',
    );
  let alg = values.alg as string | undefined;
  if (!alg) {
    try {
      alg = (JSON.parse(readFileSync(keyFile, 'utf8')) as JWK).alg;
    } catch {
      /* PEM */
    }
  }
  if (!alg) throw new UsageError('--alg is required when the key file does not name one');
  const keys = await loadSigningKeys({ alg, key_file: keyFile, previous_key_files: [] }, 'mint', {
    baseDir: process.cwd(),
    logger: createLogger('silent'),
  }).catch((err: unknown) => {
    // Problems are worded for config paths ("mint.key_file: …"); here the field is --key.
    if (err instanceof ConfigError)
      throw new ConfigError(err.problems.map((p) => p.replace(/^mint\.key_file/, '--key')));
    throw err;
  });
  const now = wholeSeconds(nowSeconds());
  const header: Record<string, unknown> = {
    alg,
    kid: keys.current.kid,
    typ: values.typ ?? 'JWT',
  };
  const exp = now + ttl;
  // An expired token was issued DEFAULT_TTL seconds before it expired (iat before exp).
  const iat = ttl > 0 ? now : exp - DEFAULT_TTL;
  if (ttl < 0 && claims.exp === undefined)
    process.stderr.write(
      `note: this token expired ${-ttl} s ago (exp ${new Date(secondsToMs(exp)).toISOString()}); ` +
        'a service refuses it once that is more than its clock skew (clock_skew_seconds, default 60)\n',
    );
  process.stdout.write(`${signJws(keys.current, header, { iat, exp, ...claims })}\n`);
}
