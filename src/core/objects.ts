/** A JSON-style object: not null, not an array. Says nothing about its prototype. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
