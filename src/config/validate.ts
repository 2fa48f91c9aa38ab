import { closest, distance } from 'fastest-levenshtein';
import { isPlainObject } from '../core/objects.js';

// Validates a parsed config against the JSON Schema of schema.ts, fills defaults, and
// reports every problem as `path: message` with the config path of the value at fault
// (`rules[2].require.scopes_any: must not be empty`). It reads the subset of JSON Schema
// the schema builders (sections/kit.ts) produce, plus their `x-` notes. A general JSON
// Schema validator would check the same document (the tests run ajv on the examples),
// but reports failing keywords rather than one plain sentence per field.

/** A JSON Schema node as the builders make it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- read by keyword all over config/, which is being reworked
export type SchemaNode = Readonly<Record<string, any>>;

const describe = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v);
const join = (path: string, key: string) => (path ? `${path}.${key}` : key);

/** Whether the file may leave the key out (the loader fills it, or it is optional). */
export function hasDefault(node: SchemaNode): boolean {
  return 'default' in node || 'x-default-text' in node;
}

/** ["a, b", "c"] → ["a", "b", "c"]: items split on commas, trimmed, empty ones dropped. */
export function splitCommaList(values: readonly string[]): string[] {
  return values.flatMap((v) => v.split(',').map((s) => s.trim())).filter((s) => s !== '');
}

/**
 * The value to use for `value` at `path` (defaults filled), or undefined after pushing
 * its problems. A missing value (undefined or null) takes the node's default.
 */
export function validateNode(value: unknown, node: SchemaNode, path: string, problems: string[]): unknown {
  if (value === undefined || value === null) {
    if (!('default' in node)) return undefined;
    const d: unknown = structuredClone(node.default);
    // An object default ({}) is filled from the nested defaults.
    return isPlainObject(d) && node.properties ? validateNode(d, node, path, problems) : d;
  }
  if (node['x-comma-list']) return commaList(value, node, path, problems);
  if (node.anyOf) return anyOf(value, node, path, problems);
  switch (node.type) {
    case 'string':
      return scalar(value, node, path, problems, typeof value === 'string', () => {
        if (node.minLength && (value as string).length < node.minLength) return 'must not be empty';
        if (node.enum && !node.enum.includes(value))
          return `must be one of ${node.enum.join(', ')}, got ${JSON.stringify(value)}`;
        return undefined;
      });
    case 'integer':
    case 'number': {
      const ok =
        typeof value === 'number' &&
        (node.type === 'integer' ? Number.isInteger(value) : Number.isFinite(value));
      return scalar(value, node, path, problems, ok, () => {
        const n = value as number;
        if (node.minimum !== undefined && n < node.minimum) return `must be >= ${node.minimum}, got ${n}`;
        if (node.maximum !== undefined && n > node.maximum) return `must be <= ${node.maximum}, got ${n}`;
        return undefined;
      });
    }
    case 'boolean':
      if (node.const !== undefined && value !== node.const) {
        problems.push(`${path}: must be ${String(node.const)}`);
        return undefined;
      }
      return scalar(value, node, path, problems, typeof value === 'boolean', () => undefined);
    case 'array':
      return array(value, node, path, problems);
    case 'object':
      return object(value, node, path, problems);
    default:
      return value; // any JSON value; checked where it is used
  }
}

function typeText(node: SchemaNode): string {
  switch (node.type) {
    case 'integer':
      return 'an integer';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'true or false';
    default:
      return 'a string';
  }
}

function scalar(
  value: unknown,
  node: SchemaNode,
  path: string,
  problems: string[],
  typeOk: boolean,
  rangeProblem: () => string | undefined,
): unknown {
  if (!typeOk) {
    const got = node.type === 'integer' || node.type === 'number' ? ` ${JSON.stringify(value)}` : '';
    problems.push(`${path}: must be ${typeText(node)}, got ${describe(value)}${got}`);
    return undefined;
  }
  const problem = rangeProblem();
  if (problem === undefined) return value;
  problems.push(`${path}: ${problem}`);
  return undefined;
}

function commaList(value: unknown, node: SchemaNode, path: string, problems: string[]): unknown {
  const raw = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(raw) || raw.some((x) => typeof x !== 'string')) {
    problems.push(`${path}: must be a string or a list of strings`);
    return undefined;
  }
  const list = splitCommaList(raw as string[]);
  const listNode = (node.anyOf as SchemaNode[]).find((b) => b.type === 'array');
  if (listNode?.minItems && list.length < listNode.minItems) {
    problems.push(`${path}: must not be empty`);
    return undefined;
  }
  return list;
}

function fits(value: unknown, branch: SchemaNode): boolean {
  if (branch.const !== undefined) return value === branch.const;
  switch (branch.type) {
    case 'string':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number';
    case 'integer':
      return Number.isInteger(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'array':
      return Array.isArray(value);
    case 'object':
      return isPlainObject(value);
    default:
      return false;
  }
}

/** One of several branches, picked by the kind of the value. */
function anyOf(value: unknown, node: SchemaNode, path: string, problems: string[]): unknown {
  const shorthand = node['x-shorthand'] as string | undefined;
  if (shorthand !== undefined && typeof value === 'string') value = { [shorthand]: value };
  const branch = (node.anyOf as SchemaNode[]).find(
    (b) => fits(value, b) && !(shorthand !== undefined && b.type === 'string'),
  );
  if (branch) return validateNode(value, branch, path, problems);
  const expected =
    (node['x-expected'] as string | undefined) ??
    (node.anyOf as SchemaNode[])
      .map(typeText)
      .join(', ')
      .replace(/, ([^,]*)$/, ' or $1');
  problems.push(`${path}: must be ${expected}, got ${describe(value)}`);
  return undefined;
}

function array(value: unknown, node: SchemaNode, path: string, problems: string[]): unknown {
  const items = node.items as SchemaNode;
  if (items.type === 'string' && !items.enum) {
    // A list of plain strings is one value: one sentence for the whole list.
    if (!Array.isArray(value) || value.some((x) => typeof x !== 'string')) {
      problems.push(`${path}: must be a list of strings`);
      return undefined;
    }
  } else if (!Array.isArray(value)) {
    problems.push(`${path}: must be a list, got ${describe(value)}`);
    return undefined;
  }
  const list = value as unknown[];
  if (node.minItems && list.length < node.minItems) {
    problems.push(`${path}: must not be empty`);
    return undefined;
  }
  return list.map((item, i) => validateNode(item, items, `${path}[${i}]`, problems));
}

function object(value: unknown, node: SchemaNode, path: string, problems: string[]): unknown {
  const props = node.properties as Record<string, SchemaNode> | undefined;
  if (!isPlainObject(value)) {
    problems.push(`${path}: must be ${props ? 'an object' : 'a map'}, got ${describe(value)}`);
    return undefined;
  }
  // An empty block or map where one is given would silently mean "no requirement".
  if (node.minProperties && Object.keys(value).length < node.minProperties)
    problems.push(`${path}: must not be empty`);
  if (!props) {
    // A map: every value against the one value schema.
    const values = Object.values(node.patternProperties ?? {})[0] as SchemaNode | undefined;
    const out: Record<string, unknown> = Object.create(null);
    for (const [k, v] of Object.entries(value)) {
      const checked = values ? validateNode(v, values, join(path, k), problems) : v;
      if (checked !== undefined) out[k] = checked;
    }
    return out;
  }
  if (node.additionalProperties === false) {
    for (const key of Object.keys(value))
      if (!Object.prototype.hasOwnProperty.call(props, key))
        problems.push(
          `${join(path, key)}: unknown key${didYouMean(key, Object.keys(props))} (allowed: ${Object.keys(props).join(', ')})`,
        );
  }
  const required = new Set<string>(node.required ?? []);
  const out: Record<string, unknown> = {};
  for (const [key, prop] of Object.entries(props)) {
    const p = join(path, key);
    const v = value[key];
    if ((v === undefined || v === null) && required.has(key) && !hasDefault(prop)) {
      problems.push(`${p}: required`);
      continue;
    }
    const checked = validateNode(v, prop, p, problems);
    if (checked !== undefined) out[key] = checked;
  }
  return out;
}

/** ` (did you mean "x"?)` when one allowed key is a likely misspelling of `key`, else ''. */
export function didYouMean(key: string, allowed: readonly string[]): string {
  if (allowed.length === 0) return '';
  const lower = key.toLowerCase();
  const best = closest(lower, allowed);
  // A close edit (a third of the key, at least 1 and at most 3) or the same letters in another case.
  const limit = Math.min(3, Math.max(1, Math.floor(key.length / 3)));
  return distance(lower, best) <= limit ? ` (did you mean "${best}"?)` : '';
}
