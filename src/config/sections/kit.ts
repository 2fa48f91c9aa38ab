import { Type, type Static, type TSchema, type TUnsafe } from '@sinclair/typebox';

// Small builders over TypeBox for the configuration schema. Everything they build is plain
// JSON Schema (what config.schema.json publishes) plus a few `x-` notes that the loader's
// validator reads and the generator strips:
//   x-comma-list   a string or a list of strings; "a, b" items are split on commas
//   x-shorthand    a list item written as a plain string means { [x-shorthand]: string }
//   x-expected     the wording of "must be …" when a value fits none of an anyOf's branches
//   x-default-text a default computed at load (shown in the docs; the key may be left out)
//   x-env          the environment variable that overrides the key (fed to convict)
//
// A property listed as required whose schema has a `default` (or x-default-text) may be
// left out of the file: the loader fills it, so the derived type has it and the
// published schema does not require it.

/** Schema options every builder accepts: at least a description. */
export interface Doc {
  description: string;
  default?: unknown;
  examples?: unknown[];
  'x-env'?: string;
  'x-default-text'?: string;
  /** Objects and maps: at least this many keys when given. */
  minProperties?: number;
}

export const str = (doc: Doc) => Type.String(doc);
/** A string that must not be empty. */
export const text = (doc: Doc) => Type.String({ minLength: 1, ...doc });
export const int = (doc: Doc & { minimum?: number; maximum?: number }) => Type.Integer(doc);
export const bool = (doc: Doc) => Type.Boolean(doc);
export const num = (doc: Doc & { minimum?: number; maximum?: number }) => Type.Number(doc);
/** Any JSON value (checked where it is used). */
export const anyValue = (doc: Doc) => Type.Unknown(doc);

/** One of fixed strings; the derived type is their union. */
export function oneOf<const T extends readonly string[]>(values: T, doc: Doc): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...doc });
}

/** A list of strings; `minItems: 1` unless allowEmpty. */
export function strings(doc: Doc & { allowEmpty?: boolean }) {
  const { allowEmpty, ...rest } = doc;
  return Type.Array(Type.String(), allowEmpty ? rest : { minItems: 1, ...rest });
}

/** A list of strings also written as one string; every item is split on commas at load. */
export function commaList(doc: Doc & { allowEmpty?: boolean }): TUnsafe<string[]> {
  const { allowEmpty, ...rest } = doc;
  return Type.Unsafe<string[]>({
    anyOf: [Type.String(), Type.Array(Type.String(), allowEmpty ? {} : { minItems: 1 })],
    'x-comma-list': true,
    ...rest,
  });
}

/** A map from any key to values of one schema. */
export function mapOf<T extends TSchema>(values: T, doc: Doc) {
  return Type.Record(Type.String(), values, doc);
}

/** An object refusing unknown keys. */
export function section<P extends Record<string, TSchema>>(properties: P, doc: Doc) {
  return Type.Object(properties, { additionalProperties: false, ...doc });
}

/** A list whose items may be written as a plain string meaning `{ [key]: string }`. */
export function withShorthand<T extends TSchema>(key: string, item: T): TUnsafe<Static<T>> {
  return Type.Unsafe<Static<T>>({
    anyOf: [Type.String({ minLength: 1 }), item],
    'x-shorthand': key,
    'x-expected': `${/^[aeiou]/.test(key) ? 'an' : 'a'} ${key} name or an object`,
  });
}

export { Type, type Static, type TSchema };
