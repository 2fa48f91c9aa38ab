import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCertificateFile, parseJsonFile, readConfigFile } from '../../../src/core/files.js';

describe('config key and certificate files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'files-'));
  writeFileSync(join(dir, 'a.json'), '{"keys":[]}');

  it('reads a file relative to the base folder, or names the file and why not', () => {
    expect(readConfigFile('x.jwks_file', 'a.json', dir)).toEqual(Buffer.from('{"keys":[]}'));
    expect(readConfigFile('x.jwks_file', 'nope.json', dir)).toBe(
      'x.jwks_file: cannot read nope.json: no such file',
    );
    expect(readConfigFile('x.jwks_file', '.', dir)).toBe(
      'x.jwks_file: cannot read .: is a folder, not a file',
    );
  });

  it('one message for text that is not JSON, or not a certificate; never the content', () => {
    expect(parseJsonFile('x', 'a.json', '{"keys":[]}')).toEqual({ json: { keys: [] } });
    expect(parseJsonFile('x', 'a.json', 'secret{', 'a JWK')).toBe(
      'x: a.json is not valid JSON (expected a JWK)',
    );
    expect(parseCertificateFile('x', 'a.crt', Buffer.from('secret'))).toBe(
      'x: a.crt is not a PEM certificate',
    );
  });
});
