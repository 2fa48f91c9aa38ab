import { describe, expect, it } from 'vitest';
import { isPlainObject } from '../../../src/core/objects.js';

describe('isPlainObject', () => {
  it('is true for JSON objects only', () => {
    expect(isPlainObject({})).toBe(true);
    expect(isPlainObject(JSON.parse('{"keys":[]}'))).toBe(true);
    for (const v of [null, undefined, [], [1], 'x', 1, true]) expect(isPlainObject(v)).toBe(false);
  });
});
