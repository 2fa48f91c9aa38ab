import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/core/errors.js';
import { loadConfigObject } from '../../../src/config/load.js';
import { didYouMean } from '../../../src/config/validate.js';

function problemsOf(doc: Record<string, unknown>): string[] {
  try {
    loadConfigObject(doc, process.cwd(), {});
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('a misspelt key gets a "did you mean"', () => {
  it('names the closest allowed key at the top level and inside sections', () => {
    const problems = problemsOf({
      issuer: [],
      servr: {},
      rules: [{ name: 'r', match: { path_prefx: '/' } }],
    });
    expect(problems).toContainEqual(
      expect.stringMatching(/^issuer: unknown key \(did you mean "issuers"\?\)/),
    );
    expect(problems).toContainEqual(expect.stringMatching(/^servr: unknown key \(did you mean "server"\?\)/));
    expect(problems).toContainEqual(
      expect.stringMatching(/^rules\[0\]\.match\.path_prefx: unknown key \(did you mean "path_prefix"\?\)/),
    );
  });

  it('suggests nothing for a key that resembles none, and still lists what is allowed', () => {
    const [problem] = problemsOf({ zzzzzz: 1 });
    expect(problem).toMatch(/^zzzzzz: unknown key \(allowed: server, /);
    expect(problem).not.toMatch(/did you mean/);
  });

  it('matches case-insensitively and bounds the edit distance by the key length', () => {
    expect(didYouMean('Server', ['server', 'store'])).toBe(' (did you mean "server"?)');
    expect(didYouMean('lg', ['log'])).toBe(' (did you mean "log"?)');
    expect(didYouMean('ab', ['log'])).toBe('');
    expect(didYouMean('x', [])).toBe('');
  });
});
