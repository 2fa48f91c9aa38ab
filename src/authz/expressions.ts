// CEL expressions (@marcbachmann/cel-js, pinned): one environment, compiled and
// type-checked at config load, evaluated per request. Every feature that takes an
// expression (require.expression, token claims_expr, dynamic_metadata) goes
// through compileExpression and an ExpressionInput.
//
// - Variables: claims (local claims), scopes (list), issuer (configured issuer
//   name), request (method, normalised path, host, headers, query), context
//   (context_extensions) and now (timestamp). Anything else is a load error.
// - JSON numbers in claims are CEL doubles (as in Envoy, whose claims arrive as
//   a protobuf Struct): `int(claims.iat)` or double literals for arithmetic.
// - `matches()` has RE2 semantics, as CEL defines it, and runs in time linear in its
//   input (re2js, a pure-JS port of RE2; the library's own `matches` would use a
//   backtracking JS RegExp). Only string literal patterns are accepted; each is
//   compiled once at load, and a pattern RE2 refuses (backreferences, lookaround),
//   one longer than 256 characters or one whose RE2 program has more than 1000
//   instructions is a config error.
// - The library has no run-time cost budget: the source length and the AST are
//   bounded at load, and every evaluation for one request adds its time to that
//   request's budget (expression_budget_ms); past it, evaluation errors out (deny).
// - `source` and `destination` are the two sides of the connection as Envoy reports them
//   (address, port, principal: the peer certificate's URI SAN / SPIFFE ID). Client-IP
//   lists use Kubernetes' CEL network functions: ip(), cidr(), isIP(), isCIDR(),
//   cidr.containsIP(ip or string), ip.family(); addresses are parsed and matched by
//   node:net (isIP, BlockList). A literal given to ip() or cidr() is checked at load (a
//   bad one is a config error) and a literal CIDR is built once.
// - An expression that reads `request`, `context`, `now`, `source` or `destination` is request-dependent:
//   its outcome can differ for the same token, so decisions built on it are not
//   reused across requests.

import { performance } from 'node:perf_hooks';
import { EvaluationError, ParseError } from '@marcbachmann/cel-js';
import { RE2JS } from 're2js';
import {
  cidrLiterals,
  environment,
  NetCIDR,
  parseCIDR,
  parseIP,
  PATTERN_TYPE,
  Re2Pattern,
} from './expressions-env.js';
import { ExpressionError, type ExpressionInput } from './expressions-input.js';
import { MAX_PROGRAM_SIZE } from './path-regex.js';

export {
  DEFAULT_EXPRESSION_BUDGET_MS,
  ExpressionBudgetError,
  ExpressionError,
  ExpressionInput,
  hiddenCredentials,
  type Activation,
  type HiddenCredentials,
} from './expressions-input.js';

/** Longest accepted expression source, in characters. */
export const MAX_EXPRESSION_LENGTH = 4096;
const MAX_PATTERN_LENGTH = 256;

const REQUEST_VARIABLES: ReadonlySet<string> = new Set([
  'request',
  'context',
  'now',
  'source',
  'destination',
]);

export interface CompiledExpression {
  readonly source: string;
  /** Reads request, context or now: the result may differ between requests with the same token. */
  readonly requestDependent: boolean;
  /** Throws ExpressionError on an evaluation error (or a non-boolean where one is needed). */
  evaluate(input: ExpressionInput): unknown;
}

type AstNode = { op: string; args: unknown; start?: number };

function isNode(v: unknown): v is AstNode {
  return typeof v === 'object' && v !== null && typeof (v as { op?: unknown }).op === 'string';
}

/** The pattern compiled with RE2, or why it is refused. */
function compilePattern(pattern: string): Re2Pattern | string {
  const quoted = `'${pattern.length > MAX_PATTERN_LENGTH ? `${pattern.slice(0, 40)}…` : pattern}'`;
  if (pattern.length > MAX_PATTERN_LENGTH)
    return `matches() pattern ${quoted} is longer than ${MAX_PATTERN_LENGTH} characters`;
  let re: RE2JS;
  try {
    re = RE2JS.compile(pattern);
  } catch (err) {
    // "error parsing regexp: invalid or unsupported Perl syntax: `(?=`"
    const why = (err as Error).message.replace(/^error parsing regexp: /, '');
    return `matches() pattern ${quoted} is not accepted by RE2: ${why}`;
  }
  // As for path_regex: a huge program makes even linear matching slow on a long value.
  const size = re.programSize();
  if (size > MAX_PROGRAM_SIZE) {
    return `matches() pattern ${quoted} is too large: its RE2 program has ${size} instructions, at most ${MAX_PROGRAM_SIZE} are accepted`;
  }
  return new Re2Pattern(re);
}

/**
 * Walks the AST: variables read, and problems with `matches` calls (position, text).
 * Each literal `matches` pattern is compiled and put in place of the literal.
 */
function inspect(root: unknown): { variables: Set<string>; problems: [number, string][] } {
  const variables = new Set<string>();
  const problems: [number, string][] = [];
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (Array.isArray(v)) {
      for (const x of v) stack.push(x);
      continue;
    }
    if (!isNode(v)) continue;
    if (v.op === 'id' && typeof v.args === 'string') variables.add(v.args);
    if ((v.op === 'rcall' || v.op === 'call') && Array.isArray(v.args) && v.args[0] === 'matches') {
      const callArgs: unknown[] = v.op === 'rcall' ? (v.args[2] as unknown[]) : (v.args[1] as unknown[]);
      const pattern = Array.isArray(callArgs) ? callArgs[callArgs.length - 1] : undefined;
      if (!isNode(pattern) || pattern.op !== 'value' || typeof pattern.args !== 'string') {
        problems.push([v.start ?? 0, 'matches() needs a string literal pattern']);
      } else {
        const compiled = compilePattern(pattern.args);
        if (typeof compiled === 'string') problems.push([pattern.start ?? 0, compiled]);
        else pattern.args = compiled;
      }
    }
    if (v.op === 'call' && Array.isArray(v.args) && (v.args[0] === 'ip' || v.args[0] === 'cidr')) {
      const arg = (v.args[1] as unknown[] | undefined)?.[0];
      if (isNode(arg) && arg.op === 'value' && typeof arg.args === 'string') {
        const text = arg.args;
        const parsed = v.args[0] === 'ip' ? parseIP(text) : parseCIDR(text);
        if (typeof parsed === 'string') problems.push([arg.start ?? 0, `${v.args[0]}('${text}'): ${parsed}`]);
        else if (parsed instanceof NetCIDR && !cidrLiterals.has(text)) cidrLiterals.set(text, parsed);
      }
    }
    stack.push(v.args);
  }
  return { variables, problems };
}

function firstLine(message: string): string {
  const i = message.indexOf('\n');
  return i < 0 ? message : message.slice(0, i);
}

/**
 * Parses and type-checks an expression. Problems go onto `problems` as
 * "<where>: <text> at position <n>"; undefined is returned then.
 * `expect: 'bool'` refuses a result that is not boolean (a dynamic result is
 * checked when evaluated).
 */
export function compileExpression(
  source: string,
  where: string,
  expect: 'bool' | 'value',
  problems: string[],
): CompiledExpression | undefined {
  const fail = (position: number | undefined, text: string): undefined => {
    problems.push(`${where}: ${text}${position !== undefined ? ` at position ${position}` : ''}`);
    return undefined;
  };
  if (typeof source !== 'string' || source.trim() === '')
    return fail(undefined, 'must be a non-empty CEL expression');
  if (source.length > MAX_EXPRESSION_LENGTH)
    return fail(undefined, `longer than ${MAX_EXPRESSION_LENGTH} characters`);
  let fn: ReturnType<typeof environment.parse>;
  try {
    fn = environment.parse(source);
  } catch (err) {
    if (err instanceof ParseError) return fail(err.range?.start, `syntax error: ${firstLine(err.message)}`);
    return fail(undefined, `syntax error: ${firstLine((err as Error).message)}`);
  }
  // Before the type check: it binds each call to an overload by its argument types.
  const { variables, problems: found } = inspect(fn.ast);
  if (found.length > 0) {
    for (const [position, text] of found) fail(position, text);
    return undefined;
  }
  const checked = fn.check();
  if (!checked.valid || checked.type === undefined) {
    const e = checked.error;
    const text = firstLine(e?.message ?? 'invalid expression').replaceAll(PATTERN_TYPE, 'string');
    return fail(e?.range?.start, `type error: ${text}`);
  }
  if (expect === 'bool' && checked.type !== 'bool' && checked.type !== 'dyn')
    return fail(0, `must return a boolean, but returns ${checked.type}`);
  let requestDependent = false;
  for (const name of variables) if (REQUEST_VARIABLES.has(name)) requestDependent = true;
  const wantBool = expect === 'bool';
  return Object.freeze({
    source,
    requestDependent,
    evaluate(input: ExpressionInput): unknown {
      // One clock pair per evaluation (not per call inside it): the request's running total.
      input.checkBudget();
      let start = performance.now();
      let value: unknown;
      let took: number;
      try {
        value = fn(input.activation());
        took = performance.now() - start;
        if (input.shouldRemeasure(took)) {
          // Wall time counts the process being descheduled (or a GC pause) mid-evaluation.
          // Before a denial the (deterministic) evaluation runs once more, timed in CPU
          // time of the process: a pause does not deny a cheap expression, a slow one is
          // slow twice. Only here: process.cpuUsage() costs a system call.
          start = performance.now();
          const cpu = process.cpuUsage();
          value = fn(input.activation());
          const used = process.cpuUsage(cpu);
          took = Math.min(performance.now() - start, (used.user + used.system) / 1000);
        }
      } catch (err) {
        input.charge(performance.now() - start);
        if (err instanceof EvaluationError) {
          const at = err.range?.start;
          throw new ExpressionError(
            `${err.code ?? 'evaluation_error'}${at !== undefined ? ` at position ${at}` : ''}`,
          );
        }
        throw new ExpressionError(`evaluation failed: ${firstLine((err as Error).message)}`);
      }
      input.charge(took);
      if (wantBool && typeof value !== 'boolean')
        throw new ExpressionError(`returned ${typeof value}, expected a boolean`);
      return value;
    },
  });
}

/**
 * A CEL result as JSON data: CEL ints come back as bigint (exact within 2^53,
 * else a decimal string), maps as objects, timestamps as RFC 3339 text.
 */
export function toJsonValue(v: unknown, depth = 0): unknown {
  if (depth > 32) throw new ExpressionError('result nested too deeply');
  if (typeof v === 'bigint') {
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER)
      ? Number(v)
      : v.toString();
  }
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new ExpressionError('result is not a finite number');
    return v;
  }
  if (typeof v === 'string' || typeof v === 'boolean' || v === null) return v;
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.map((x) => toJsonValue(x, depth + 1));
  if (v instanceof Map) {
    const out: Record<string, unknown> = Object.create(null);
    for (const [k, x] of v) out[String(k)] = toJsonValue(x, depth + 1);
    return out;
  }
  if (typeof v === 'object' && v !== undefined) {
    const out: Record<string, unknown> = Object.create(null);
    for (const k of Object.keys(v)) out[k] = toJsonValue((v as Record<string, unknown>)[k], depth + 1);
    return out;
  }
  throw new ExpressionError(`result of type ${typeof v} has no JSON form`);
}
