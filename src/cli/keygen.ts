import { createPublicKey } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';
import { JWS_ALGORITHMS } from '../config/schema.js';
import { generateSigningKeyObject } from '../crypto/key-import.js';
import { parseOptions, UsageError } from './args.js';

/** The `keygen` command: print a fresh private JWK and its public JWK. */
export async function keygenCommand(args: string[]): Promise<void> {
  const { values } = parseOptions(args, { alg: { type: 'string' }, kid: { type: 'string' } });
  const alg = (values.alg as string | undefined) ?? 'ES256';
  if (!(JWS_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new UsageError(`--alg must be one of ${JWS_ALGORITHMS.join(', ')}`);
  }
  const key = generateSigningKeyObject(alg);
  const priv = await exportJWK(key);
  const pub: JWK | undefined = key.type === 'private' ? await exportJWK(createPublicKey(key)) : undefined;
  const kid = (values.kid as string | undefined) ?? (await calculateJwkThumbprint(pub ?? priv));
  const meta = { kid, alg, use: 'sig' };
  process.stdout.write(
    `${JSON.stringify({ private: { ...priv, ...meta }, public: pub ? { ...pub, ...meta } : undefined }, null, 2)}\n`,
  );
}
