// A small structural validator for the parts of the config that convict cannot
// describe (arrays of objects, maps, nested optional sections). It fills defaults,
// rejects unknown keys, and reports every problem with its config path, e.g.
// `issuers[1].audiences: required`.

import { isPlainObject } from '../core/objects.js';

export type Problems = string[];

export type FieldSpec =
  | { type: 'string'; required?: boolean; default?: string; enum?: readonly string[]; nonEmpty?: boolean }
  | { type: 'int'; required?: boolean; default?: number; min?: number; max?: number }
  | { type: 'boolean'; required?: boolean; default?: boolean }
  | {
      type: 'string[]';
      required?: boolean;
      default?: string[];
      nonEmpty?: boolean;
      enum?: readonly string[];
      /** Also accept one string; values written "a,b" or "a, b" (IBM aud-claim style) become separate items. */
      splitCommas?: boolean;
    }
  | {
      type: 'object';
      required?: boolean;
      fields: Record<string, FieldSpec>;
      optional?: boolean;
      /** When present it must set at least one key (an empty one would silently mean "nothing"). */
      nonEmpty?: boolean;
    }
  | {
      type: 'array';
      required?: boolean;
      default?: unknown[];
      items: Record<string, FieldSpec>;
      /** An item written as a plain string means `{ [shorthand]: string }`. */
      shorthand?: string;
    }
  | {
      type: 'map';
      required?: boolean;
      default?: Record<string, unknown>;
      values: 'string' | 'scalar' | 'scalar[]' | 'any';
      nonEmpty?: boolean;
    }
  | { type: 'any'; required?: boolean };

const describe = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v);

function checkScalar(v: unknown): boolean {
  return typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v));
}

export function validateField(value: unknown, spec: FieldSpec, path: string, problems: Problems): unknown {
  if (value === undefined || value === null) {
    if (spec.required) {
      problems.push(`${path}: required`);
      return undefined;
    }
    if ('default' in spec && spec.default !== undefined) return structuredClone(spec.default);
    if (spec.type === 'object' && !spec.optional) return validateObject({}, spec.fields, path, problems);
    return undefined;
  }
  switch (spec.type) {
    case 'string':
      if (typeof value !== 'string') {
        problems.push(`${path}: must be a string, got ${describe(value)}`);
        return undefined;
      }
      if (spec.nonEmpty && value.length === 0) problems.push(`${path}: must not be empty`);
      if (spec.enum && !spec.enum.includes(value))
        problems.push(`${path}: must be one of ${spec.enum.join(', ')}, got "${value}"`);
      return value;
    case 'int':
      if (typeof value !== 'number' || !Number.isInteger(value)) {
        problems.push(`${path}: must be an integer, got ${describe(value)} ${JSON.stringify(value)}`);
        return undefined;
      }
      if (spec.min !== undefined && value < spec.min)
        problems.push(`${path}: must be >= ${spec.min}, got ${value}`);
      if (spec.max !== undefined && value > spec.max)
        problems.push(`${path}: must be <= ${spec.max}, got ${value}`);
      return value;
    case 'boolean':
      if (typeof value !== 'boolean') {
        problems.push(`${path}: must be true or false, got ${describe(value)}`);
        return undefined;
      }
      return value;
    case 'string[]': {
      const raw = spec.splitCommas && typeof value === 'string' ? [value] : value;
      if (!Array.isArray(raw) || raw.some((x) => typeof x !== 'string')) {
        problems.push(
          spec.splitCommas
            ? `${path}: must be a string or a list of strings`
            : `${path}: must be a list of strings`,
        );
        return undefined;
      }
      const list = spec.splitCommas ? splitCommaList(raw as string[]) : (raw as string[]);
      if (spec.nonEmpty && list.length === 0) problems.push(`${path}: must not be empty`);
      if (spec.enum) {
        for (const [i, x] of list.entries()) {
          if (!spec.enum.includes(x))
            problems.push(`${path}[${i}]: must be one of ${spec.enum.join(', ')}, got "${x}"`);
        }
      }
      return [...list];
    }
    case 'object':
      if (!isPlainObject(value)) {
        problems.push(`${path}: must be an object, got ${describe(value)}`);
        return undefined;
      }
      if (spec.nonEmpty && Object.keys(value).length === 0) problems.push(`${path}: must not be empty`);
      return validateObject(value, spec.fields, path, problems);
    case 'array':
      if (!Array.isArray(value)) {
        problems.push(`${path}: must be a list, got ${describe(value)}`);
        return undefined;
      }
      return value.map((item, i) => {
        if (spec.shorthand !== undefined && typeof item === 'string') item = { [spec.shorthand]: item };
        if (!isPlainObject(item)) {
          const sh = spec.shorthand;
          const what =
            sh !== undefined ? `${/^[aeiou]/.test(sh) ? 'an' : 'a'} ${sh} name or an object` : 'an object';
          problems.push(`${path}[${i}]: must be ${what}, got ${describe(item)}`);
          return undefined;
        }
        return validateObject(item, spec.items, `${path}[${i}]`, problems);
      });
    case 'map': {
      if (!isPlainObject(value)) {
        problems.push(`${path}: must be a map, got ${describe(value)}`);
        return undefined;
      }
      const out: Record<string, unknown> = Object.create(null);
      if (spec.nonEmpty && Object.keys(value).length === 0) problems.push(`${path}: must not be empty`);
      for (const [k, v] of Object.entries(value)) {
        const p = `${path}.${k}`;
        if (spec.values === 'string' && typeof v !== 'string') problems.push(`${p}: must be a string`);
        else if (spec.values === 'scalar' && !checkScalar(v))
          problems.push(`${p}: must be a string, number or boolean`);
        else if (spec.values === 'scalar[]' && !(Array.isArray(v) && v.every(checkScalar)))
          problems.push(`${p}: must be a list of strings, numbers or booleans`);
        else if (spec.values === 'scalar[]' && (v as unknown[]).length === 0)
          problems.push(`${p}: must not be empty`);
        out[k] = v;
      }
      return out;
    }
    case 'any':
      return value;
  }
}

/** ["a, b", "c"] → ["a", "b", "c"]: items split on commas, trimmed, empty ones dropped. */
export function splitCommaList(values: readonly string[]): string[] {
  return values.flatMap((v) => v.split(',').map((s) => s.trim())).filter((s) => s !== '');
}

export function validateObject(
  value: Record<string, unknown>,
  fields: Record<string, FieldSpec>,
  path: string,
  problems: Problems,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    if (!Object.prototype.hasOwnProperty.call(fields, key)) {
      problems.push(
        `${path ? `${path}.` : ''}${key}: unknown key (allowed: ${Object.keys(fields).join(', ')})`,
      );
    }
  }
  for (const [key, spec] of Object.entries(fields)) {
    const v = validateField(value[key], spec, path ? `${path}.${key}` : key, problems);
    if (v !== undefined) out[key] = v;
  }
  return out;
}
