// The variables of one request for CEL expressions (see expressions.ts): the `request`,
// `source` and `destination` views, the credentials expressions never see, and the
// per-request evaluation budget. Built on first use; nothing here runs for a request
// whose routes have no expression.

import { AuthzError } from '../core/errors.js';
import { credentialKey, decodeQueryComponent, forEachQueryParam } from '../core/query.js';
import type { AuthRequest, Peer, Principal } from '../core/request.js';
import { secondsToMs } from '../core/time.js';

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
  /** credentialKey of each token parameter name: hidden under every spelling a backend reads. */
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
    query: new Set([...tokenQuery].map(credentialKey)),
  };
}

const DEFAULT_HIDDEN = hiddenCredentials([], []);

/** The `request` variable: a registered type, so `request.metod` is a load error. */
export class RequestView {
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
export class PeerView {
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

/** An evaluation error: the message names the expression's position, never a claim value. */
export class ExpressionError extends AuthzError {
  readonly code: string = 'ERR_EXPRESSION_EVALUATION';

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
  override readonly code = 'ERR_EXPRESSION_BUDGET_EXCEEDED';

  constructor(budgetMs: number) {
    super(`evaluation budget of ${budgetMs} ms exceeded`);
    this.name = 'ExpressionBudgetError';
  }
}

const scopeLists = new WeakMap<Principal, readonly string[]>();
const NO_CLAIMS: Readonly<Record<string, unknown>> = Object.freeze(Object.create(null));

/** request.query: the first value of each decoded name, without the token parameters. */
function firstQueryValues(rawPath: string, hidden: ReadonlySet<string>): Record<string, string> {
  const visible: VisibleQuery = { out: Object.create(null), hidden };
  forEachQueryParam(rawPath, visible, addVisibleParam);
  return visible.out;
}

interface VisibleQuery {
  readonly out: Record<string, string>;
  /** credentialKey of each token parameter name: hidden under every spelling. */
  readonly hidden: ReadonlySet<string>;
}

function addVisibleParam(q: VisibleQuery, rawName: string, rawValue: string): void {
  const name = decodeQueryComponent(rawName);
  if (!(name in q.out) && !q.hidden.has(credentialKey(rawName))) q.out[name] = decodeQueryComponent(rawValue);
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
