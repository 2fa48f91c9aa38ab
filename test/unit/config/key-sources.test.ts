import { describe, expect, it } from 'vitest';
import {
  ISSUER_KEY_SOURCES,
  issuerKeySource,
  issuerKeySources,
  keySourceField,
  keySourcePath,
} from '../../../src/config/key-sources.js';
import type { IssuerConfig } from '../../../src/config/types.js';

const issuer = (over: Partial<IssuerConfig>) => ({ name: 'a', issuer: 'https://a', ...over }) as IssuerConfig;

describe('issuer key sources', () => {
  it('lists the seven kinds', () => {
    expect([...ISSUER_KEY_SOURCES].sort()).toEqual(
      ['discovery_uri', 'introspection', 'jwks', 'jwks_file', 'jwks_uri', 'secret_file', 'truststore'].sort(),
    );
  });

  it('finds the kind an issuer names, and every kind when it names several', () => {
    expect(issuerKeySource(issuer({ jwks_file: 'k.json' }))).toBe('jwks_file');
    expect(issuerKeySource(issuer({}))).toBeUndefined();
    expect(issuerKeySources(issuer({ jwks_uri: 'https://x', secret_file: 's' }))).toEqual([
      'jwks_uri',
      'secret_file',
    ]);
  });

  it('names the field and the local path of each kind', () => {
    expect(keySourceField('truststore')).toBe('truststore.path');
    expect(keySourceField('jwks_uri')).toBe('jwks_uri');
    const iss = issuer({ truststore: { path: 'certs' } });
    expect(keySourcePath(iss, 'truststore')).toEqual({ file: 'certs', folder: true });
    expect(keySourcePath(issuer({ secret_file: 's' }), 'secret_file')).toEqual({ file: 's' });
    expect(keySourcePath(issuer({ jwks_uri: 'https://x' }), 'jwks_uri')).toBeUndefined();
    const introspected = issuer({
      introspection: {
        endpoint: 'https://idp/introspect',
        client_id: 'c',
        client_secret_file: 'idp.secret',
        cache_seconds: 60,
        timeout_ms: 2000,
      },
    });
    expect(issuerKeySource(introspected)).toBe('introspection');
    expect(keySourceField('introspection')).toBe('introspection.client_secret_file');
    expect(keySourcePath(introspected, 'introspection')).toEqual({ file: 'idp.secret' });
  });
});
