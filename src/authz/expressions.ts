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

import { BlockList, isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Environment, EvaluationError, ParseError } from '@marcbachmann/cel-js';
import { RE2JS } from 're2js';
import type { AuthRequest, Peer, Principal } from '../core/request.js';
import { secondsToMs } from '../core/time.js';
import { MAX_PROGRAM_SIZE } from './path-regex.js';

/** Longest accepted expression source, in characters. */
export const MAX_EXPRESSION_LENGTH = 4096;
const MAX_PATTERN_LENGTH = 256;
/** expression_budget_ms when none is given. */
export const DEFAULT_EXPRESSION_BUDGET_MS = 10;
/** Longest pause (GC, descheduling, CPU throttling) an over-budget evaluation is timed again for. */
const MAX_PAUSE_MS = 250;

/**
 * Credentials an expression never sees: a policy must not be able to copy a token into
 * dynamic metadata (access logs), a minted claim or a rate-limit key. These headers are
 * always hidden; the token sources' own header and query names are added by the pipeline.
 */
export interface HiddenCredentials {
  readonly headers: ReadonlySet<string>;
  readonly query: ReadonlySet<string>;
}

// `:path` carries the raw query (a token parameter too): expressions read request.path and
// request.query instead.
const ALWAYS_HIDDEN_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'dpop', ':path'];

export function hiddenCredentials(
  tokenHeaders: Iterable<string>,
  tokenQuery: Iterable<string>,
): HiddenCredentials {
  return {
    headers: new Set([...ALWAYS_HIDDEN_HEADERS, ...[...tokenHeaders].map((h) => h.toLowerCase())]),
    query: new Set(tokenQuery),
  };
}

const DEFAULT_HIDDEN = hiddenCredentials([], []);

/** The `request` variable: a registered type, so `request.metod` is a load error. */
class RequestView {
  private parsedQuery?: Readonly<Record<string, string>>;
  private visibleHeaders?: Readonly<Record<string, string>>;

  constructor(
    readonly method: string,
    readonly path: string,
    readonly host: string,
    private readonly allHeaders: Readonly<Record<string, string>>,
    private readonly rawPath: string,
    private readonly hidden: HiddenCredentials,
  ) {}

  /** Built only when an expression reads it, without the credential headers. */
  get headers(): Readonly<Record<string, string>> {
    if (this.visibleHeaders) return this.visibleHeaders;
    const out: Record<string, string> = Object.create(null);
    for (const name in this.allHeaders)
      if (!this.hidden.headers.has(name)) out[name] = this.allHeaders[name]!;
    return (this.visibleHeaders = out);
  }

  /** Parsed only when an expression reads it, without the token query parameters. */
  get query(): Readonly<Record<string, string>> {
    return (this.parsedQuery ??= firstQueryValues(this.rawPath, this.hidden.query));
  }
}

/** `source` / `destination`: a registered type, so `source.adress` is a load error. */
class PeerView {
  constructor(
    private readonly peer: Peer | undefined,
    /** Envoy sent the client certificate (source only: destination's is never sent). */
    readonly certificate_present: boolean,
  ) {}

  get address(): string {
    return this.peer?.address ?? '';
  }

  get port(): bigint {
    return BigInt(this.peer?.port ?? 0);
  }

  get principal(): string {
    return this.peer?.principal ?? '';
  }
}

const NO_PEER = new PeerView(undefined, false);

/** A `net.IP` value (Kubernetes' CEL network library): a valid IPv4 or IPv6 address. */
class NetIP {
  constructor(
    readonly address: string,
    readonly family: 4 | 6,
  ) {}
}

/** A `net.CIDR` value: an address block, matched by node:net's BlockList. */
class NetCIDR {
  constructor(private readonly block: BlockList) {}

  contains(ip: NetIP): boolean {
    return this.block.check(ip.address, ip.family === 4 ? 'ipv4' : 'ipv6');
  }
}

/** An IP address as ip() takes it, or why not (the message never repeats the input). */
function parseIP(text: string): NetIP | string {
  // A zone (fe80::1%eth0) names an interface of one host: not an address to allow-list.
  const family = text.includes('%') ? 0 : isIP(text);
  if (family === 0) return 'not an IP address';
  return new NetIP(text, family as 4 | 6);
}

/** "address/prefix" as cidr() takes it, or why not. */
function parseCIDR(text: string): NetCIDR | string {
  const slash = text.indexOf('/');
  const prefix = text.slice(slash + 1);
  if (slash < 0 || !/^(0|[1-9][0-9]{0,2})$/.test(prefix)) return 'not a CIDR (address/prefix length)';
  const ip = parseIP(text.slice(0, slash));
  if (typeof ip === 'string') return 'not a CIDR (address/prefix length)';
  const bits = Number(prefix);
  if (bits > (ip.family === 4 ? 32 : 128)) return `prefix length ${bits} is too long`;
  const block = new BlockList();
  block.addSubnet(ip.address, bits, ip.family === 4 ? 'ipv4' : 'ipv6');
  return new NetCIDR(block);
}

/** CIDR literals of loaded expressions, built once (bounded by the configuration's size). */
const cidrLiterals = new Map<string, NetCIDR>();

function toIP(text: string): NetIP {
  const ip = parseIP(text);
  if (typeof ip === 'string') throw new Error(`ip(): ${ip}`);
  return ip;
}

function toCIDR(text: string): NetCIDR {
  const known = cidrLiterals.get(text);
  if (known) return known;
  const cidr = parseCIDR(text);
  if (typeof cidr === 'string') throw new Error(`cidr(): ${cidr}`);
  return cidr;
}

/**
 * A `matches()` pattern compiled with RE2 at load. The literal pattern of every
 * `matches` call is replaced by one of these in the parsed expression, so the call
 * resolves to the overload below instead of the library's JS RegExp one.
 */
class Re2Pattern {
  constructor(private readonly re: RE2JS) {}

  /** RE2's partial match (unanchored), as CEL's matches() is defined. */
  test(value: string): boolean {
    return this.re.test(value);
  }
}

const PATTERN_TYPE = 'envoy_jwt_authz.Re2Pattern';

const environment = new Environment({
  unlistedVariablesAreDyn: false,
  // Claim maps such as {'tenant': claims.org.id, 'n': 1} mix value types.
  homogeneousAggregateLiterals: false,
  limits: { maxAstNodes: 1000, maxDepth: 32, maxListElements: 256, maxMapEntries: 256, maxCallArguments: 16 },
})
  .registerType('envoy_jwt_authz.Request', {
    ctor: RequestView,
    fields: {
      method: 'string',
      path: 'string',
      host: 'string',
      headers: 'map<string, string>',
      query: 'map<string, string>',
    },
  })
  .registerType('envoy_jwt_authz.Peer', {
    ctor: PeerView,
    fields: { address: 'string', port: 'int', principal: 'string', certificate_present: 'bool' },
  })
  .registerType('net.IP', { ctor: NetIP, fields: {} })
  .registerType('net.CIDR', { ctor: NetCIDR, fields: {} })
  .registerFunction('ip(string): net.IP', toIP)
  .registerFunction('cidr(string): net.CIDR', toCIDR)
  .registerFunction('isIP(string): bool', (s: string) => typeof parseIP(s) !== 'string')
  .registerFunction('isCIDR(string): bool', (s: string) => typeof parseCIDR(s) !== 'string')
  .registerFunction('net.IP.family(): int', (ip: NetIP) => BigInt(ip.family))
  .registerFunction('net.CIDR.containsIP(net.IP): bool', (c: NetCIDR, ip: NetIP) => c.contains(ip))
  .registerFunction('net.CIDR.containsIP(string): bool', (c: NetCIDR, s: string) => c.contains(toIP(s)))
  // The compiled matches() patterns; CEL source has no literal of this type.
  .registerType(PATTERN_TYPE, { ctor: Re2Pattern, fields: {} })
  .registerFunction(`string.matches(${PATTERN_TYPE}): bool`, (value: string, p: Re2Pattern) => p.test(value))
  .registerVariable('claims', 'map<string, dyn>')
  .registerVariable('scopes', 'list<string>')
  .registerVariable('issuer', 'string')
  .registerVariable('request', 'envoy_jwt_authz.Request')
  .registerVariable('context', 'map<string, string>')
  .registerVariable('now', 'google.protobuf.Timestamp')
  .registerVariable('source', 'envoy_jwt_authz.Peer')
  .registerVariable('destination', 'envoy_jwt_authz.Peer');

const REQUEST_VARIABLES: ReadonlySet<string> = new Set([
  'request',
  'context',
  'now',
  'source',
  'destination',
]);

export interface Activation {
  readonly claims: Readonly<Record<string, unknown>>;
  readonly scopes: readonly string[];
  readonly issuer: string;
  readonly request: RequestView;
  readonly context: Readonly<Record<string, string>>;
  readonly now: Date;
  readonly source: PeerView;
  readonly destination: PeerView;
}

export interface CompiledExpression {
  readonly source: string;
  /** Reads request, context or now: the result may differ between requests with the same token. */
  readonly requestDependent: boolean;
  /** Throws ExpressionError on an evaluation error (or a non-boolean where one is needed). */
  evaluate(input: ExpressionInput): unknown;
}

/** An evaluation error: the message names the expression's position, never a claim value. */
export class ExpressionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExpressionError';
  }
}

/**
 * The request's expressions together took longer than expression_budget_ms (wall time).
 * Checked after each evaluation (one in progress is not interrupted) and before the next.
 */
export class ExpressionBudgetError extends ExpressionError {
  constructor(budgetMs: number) {
    super(`evaluation budget of ${budgetMs} ms exceeded`);
    this.name = 'ExpressionBudgetError';
  }
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

const scopeLists = new WeakMap<Principal, readonly string[]>();
const NO_CLAIMS: Readonly<Record<string, unknown>> = Object.freeze(Object.create(null));

function firstQueryValues(rawPath: string, hidden: ReadonlySet<string>): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  const q = rawPath.indexOf('?');
  if (q < 0) return out;
  const hash = rawPath.indexOf('#', q);
  const params = new URLSearchParams(rawPath.slice(q + 1, hash < 0 ? undefined : hash));
  for (const [name, value] of params) if (!(name in out) && !hidden.has(name)) out[name] = value;
  return out;
}

/**
 * The variables of one request, built on first use and shared by every
 * expression evaluated for it.
 */
export class ExpressionInput {
  private built?: Activation;
  /** ms spent evaluating expressions for this request so far. */
  private spentMs = 0;
  private remeasured = false;

  constructor(
    private readonly req: AuthRequest,
    private readonly normalisedPath: string,
    private readonly principal: Principal | undefined,
    private readonly nowSeconds: number,
    private readonly hidden: HiddenCredentials = DEFAULT_HIDDEN,
    /** expression_budget_ms: the total for every expression evaluated with this input. */
    private readonly budgetMs: number = DEFAULT_EXPRESSION_BUDGET_MS,
  ) {}

  /** Throws ExpressionBudgetError once the budget is spent. */
  checkBudget(): void {
    if (this.spentMs > this.budgetMs) throw new ExpressionBudgetError(this.budgetMs);
  }

  /**
   * True once per request, when an evaluation that took `ms` would pass the budget by no
   * more than a pause could explain (a longer one is not run again: no doubled cost).
   */
  shouldRemeasure(ms: number): boolean {
    if (this.remeasured || this.spentMs + ms <= this.budgetMs || ms > this.budgetMs + MAX_PAUSE_MS)
      return false;
    return (this.remeasured = true);
  }

  /** Adds one evaluation's time; throws ExpressionBudgetError when that passes the budget. */
  charge(ms: number): void {
    this.spentMs += ms;
    if (this.spentMs > this.budgetMs) throw new ExpressionBudgetError(this.budgetMs);
  }

  activation(): Activation {
    if (this.built) return this.built;
    const p = this.principal;
    let scopes: readonly string[] = [];
    if (p) {
      scopes = scopeLists.get(p) ?? [...p.scopes];
      scopeLists.set(p, scopes);
    }
    const req = this.req;
    this.built = {
      claims: p ? p.claims : NO_CLAIMS,
      scopes,
      issuer: p ? p.issuer : '',
      request: new RequestView(
        req.method,
        this.normalisedPath,
        req.host,
        req.headers,
        req.rawPath,
        this.hidden,
      ),
      context: req.contextExtensions,
      now: new Date(secondsToMs(this.nowSeconds)),
      source:
        req.source || req.clientCertificate
          ? new PeerView(req.source, req.clientCertificate !== undefined)
          : NO_PEER,
      destination: req.destination ? new PeerView(req.destination, false) : NO_PEER,
    };
    return this.built;
  }
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
