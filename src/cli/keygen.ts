import { createPublicKey, randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';
import { JWS_ALGORITHMS } from '../config/schema.js';
import { generateSigningKeyObject } from '../crypto/key-import.js';
import { parseOptions, UsageError } from './args.js';
import { generateApiKey } from '../authn/api-keys.js';

/** The `keygen` command: print a fresh private JWK and its public JWK, or (--api-key) a new API key. */
export async function keygenCommand(args: string[]): Promise<void> {
  const { values } = parseOptions(args, {
    alg: { type: 'string' },
    kid: { type: 'string' },
    'api-key': { type: 'boolean' },
    id: { type: 'string' },
  });
  if (values['api-key'] === true) {
    if (values.alg !== undefined || values.kid !== undefined)
      throw new UsageError('--api-key takes no --alg or --kid');
    apiKeyCommand(values.id as string | undefined);
    return;
  }
  if (values.id !== undefined) throw new UsageError('--id needs --api-key');
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

/**
 * A new API key, printed once (only its hash is kept anywhere), with the entry to add to
 * an api_keys keys_file. Nothing is logged.
 */
function apiKeyCommand(idOption: string | undefined): void {
  const id = idOption ?? `key-${randomBytes(4).toString('hex')}`;
  if (id.length === 0 || /[\s"]/.test(id) || id.length > 128)
    throw new UsageError('--id must be 1 to 128 characters without spaces or quotes');
  const { key, hash } = generateApiKey();
  process.stdout.write(
    `${JSON.stringify({ api_key: key, entry: { id, hash, sub: id, scopes: [] } }, null, 2)}\n`,
  );
  process.stderr.write(
    'The key is shown once: give it to the client now. Add the entry to a keys_file (set sub, scopes, claims).\n',
  );
}
