import { describe, expect, it } from 'vitest';
import { randomToken } from '../../../src/oauth/requests.js';

describe('request plumbing', () => {
  it('randomToken: exactly the requested length of base64url characters', () => {
    for (const n of [32, 46, 54, 55, 512]) {
      const t = randomToken(n);
      expect(t).toHaveLength(n);
      expect(t).toMatch(/^[A-Za-z0-9_-]+$/);
    }
    expect(randomToken(54)).not.toBe(randomToken(54));
  });
});
