import { describe, expect, it } from 'vitest';
import {
  compileExpression,
  ExpressionBudgetError,
  ExpressionError,
  ExpressionInput,
  hiddenCredentials,
  MAX_EXPRESSION_LENGTH,
  toJsonValue,
} from '../../../src/authz/expressions.js';
import type { AuthRequest, Principal } from '../../../src/core/request.js';

const request: AuthRequest = {
  method: 'GET',
  rawPath: '/a?x=1&x=2&y=%20z',
  host: 'h.example.com',
  headers: Object.assign(Object.create(null), { 'x-org': 'o1' }),
  contextExtensions: Object.assign(Object.create(null), { tier: 'gold' }),
};
const principal: Principal = {
  issuer: 'corp',
  sub: 'u1',
  claims: Object.assign(Object.create(null), { sub: 'u1', n: 3, org: { id: 'o1' } }),
  scopes: new Set(['read', 'admin']),
  scope: 'read admin',
  cacheKey: 'k',
};
const input = () => new ExpressionInput(request, '/a', principal, 1_700_000_000);

function compile(source: string, expect: 'bool' | 'value' = 'value') {
  const problems: string[] = [];
  const e = compileExpression(source, 'x', expect, problems);
  return { e, problems };
}

describe('compileExpression', () => {
  it('marks expressions that read request, context or now as request-dependent', () => {
    expect(compile("claims.sub == 'u1' && 'admin' in scopes && issuer == 'corp'").e?.requestDependent).toBe(
      false,
    );
    expect(compile("request.method == 'GET'").e?.requestDependent).toBe(true);
    expect(compile("context['tier'] == 'gold'").e?.requestDependent).toBe(true);
    expect(compile('now > timestamp(0)').e?.requestDependent).toBe(true);
  });

  it('evaluates over the request view (first query value, decoded)', () => {
    const { e } = compile("request.query['x'] + ':' + request.query['y'] + ':' + request.host");
    expect(e?.evaluate(input())).toBe('1: z:h.example.com');
  });

  it('refuses an expression longer than the limit', () => {
    const { e, problems } = compile(`'${'a'.repeat(MAX_EXPRESSION_LENGTH)}'`);
    expect(e).toBeUndefined();
    expect(problems).toEqual([`x: longer than ${MAX_EXPRESSION_LENGTH} characters`]);
  });

  it.each([
    ['claims.sub.matches(claims.pattern)', /string literal pattern/],
    ["claims.sub.matches('(')", /matches\(\) pattern '\(' is not accepted by RE2: .*missing closing \)/],
  ])('refuses the matches() pattern of %s', (source, message) => {
    const { problems } = compile(source);
    expect(problems).toEqual([expect.stringMatching(message)]);
  });

  it.each(["'^(?:abc)+$'", "'^[a-z(+]+$'", "'^(foo)-[0-9]+$'", "'^u[0-9]{1,5}$'"])(
    'accepts the literal pattern %s',
    (pattern) => {
      expect(compile(`claims.sub.matches(${pattern})`).problems).toEqual([]);
    },
  );

  it('accepts a simple literal pattern', () => {
    const { e, problems } = compile("claims.sub.matches('^u[0-9]+$')", 'bool');
    expect(problems).toEqual([]);
    expect(e?.evaluate(input())).toBe(true);
  });

  it('throws ExpressionError for a dynamic non-boolean result where a boolean is needed', () => {
    const { e } = compile('claims.sub', 'bool');
    expect(() => e?.evaluate(input())).toThrow(ExpressionError);
  });
});

describe('toJsonValue', () => {
  it('turns CEL ints into numbers, or decimal strings beyond 2^53', () => {
    expect(toJsonValue(3n)).toBe(3);
    expect(toJsonValue(2n ** 60n)).toBe('1152921504606846976');
    expect(toJsonValue({ a: [1n, 'x', true, null], m: new Map([['k', 2.5]]) })).toEqual({
      a: [1, 'x', true, null],
      m: { k: 2.5 },
    });
  });

  it('refuses values without a JSON form', () => {
    expect(() => toJsonValue(Number.NaN)).toThrow(ExpressionError);
    expect(() => toJsonValue(undefined)).toThrow(ExpressionError);
  });
});

// matches() has RE2 semantics (as CEL defines it): linear time in the input, so the
// patterns a backtracking engine takes seconds on are fine, and what RE2 does not
// accept (backreferences, lookaround) is refused at load.
describe('matches() (RE2)', () => {
  const attack = 'a'.repeat(3000) + '!';
  const inputWith = (value: string) =>
    new ExpressionInput(
      { ...request, headers: Object.assign(Object.create(null), { 'x-handle': value }) },
      '/a',
      { ...principal, claims: Object.assign(Object.create(null), { handle: value }) },
      1_700_000_000,
    );

  /** The best of a few timings of one evaluation, in ms (a loaded machine adds noise, never less). */
  function bestEvaluationMs(e: { evaluate(i: ExpressionInput): unknown }, value: string): number {
    let best = Infinity;
    for (let i = 0; i < 5; i++) {
      const input = inputWith(value);
      const start = performance.now();
      e.evaluate(input);
      const took = performance.now() - start;
      best = Math.min(best, took);
      // Under 10 ms is what is asked; past a second a backtracking engine has shown itself.
      if (best < 2 || took > 1000) break;
    }
    return best;
  }

  it.each([
    // An ordinary-looking handle check: cubic backtracking in a JS RegExp.
    "request.headers['x-handle'].matches('^[a-z0-9]+[a-z0-9._-]*[a-z0-9]+$')",
    "claims.handle.matches('^[a-z0-9]+[a-z0-9._-]*[a-z0-9]+$')",
    // Nested quantifiers, refused by the old load-time guard, are harmless in RE2.
    "claims.handle.matches('(a+)+$')",
    "claims.handle.matches('^(a|aa)*$')",
    "request.headers['x-handle'].matches('(x+x+)+y|^(\\\\w+\\\\s?)*$')",
  ])('%s on 3,000 characters takes under 10 ms', (source) => {
    const { e, problems } = compile(source, 'bool');
    expect(problems).toEqual([]);
    expect(e?.evaluate(inputWith(attack))).toBe(false);
    expect(bestEvaluationMs(e!, attack)).toBeLessThan(10);
  });

  it('has RE2 semantics: unanchored search, (?i), \\pL classes, \\z', () => {
    const cases: [string, string, boolean][] = [
      ['b+', 'abbbc', true],
      ['^b+$', 'abbbc', false],
      ['(?i)^admin$', 'AdMin', true],
      ['^\\\\pL+$', 'Zoë', true],
      ['^a\\\\z', 'a', true],
      ['^[a-z0-9]+[a-z0-9._-]*[a-z0-9]+$', 'alice.smith', true],
      ['^[a-z0-9]+[a-z0-9._-]*[a-z0-9]+$', 'alice.', false],
    ];
    for (const [pattern, value, want] of cases) {
      const { e, problems } = compile(`claims.handle.matches('${pattern}')`, 'bool');
      expect(problems, pattern).toEqual([]);
      expect(e?.evaluate(inputWith(value)), `${pattern} on ${value}`).toBe(want);
    }
  });

  it('works on a dyn receiver (a claim) and on a typed one (a header) alike', () => {
    const claim = compile("claims.handle.matches('^a+$')", 'bool').e!;
    const header = compile("request.headers['x-handle'].matches('^a+$')", 'bool').e!;
    expect(claim.evaluate(inputWith('aaa'))).toBe(true);
    expect(header.evaluate(inputWith('aaa'))).toBe(true);
    expect(claim.evaluate(inputWith('aab'))).toBe(false);
    // A claim that is not a string: an evaluation error, not a match.
    const n = compile("claims.n.matches('^3$')", 'bool').e!;
    expect(() => n.evaluate(input())).toThrow(ExpressionError);
  });

  it.each([
    ["claims.sub.matches('^(a|b)\\\\1$')", '^(a|b)\\1$'],
    ["claims.sub.matches('(?=admin)')", '(?=admin)'],
    ["claims.sub.matches('^(?!root$)')", '^(?!root$)'],
    ["claims.sub.matches('(?<=x)y')", '(?<=x)y'],
    ["claims.sub.matches('(?<!x)y')", '(?<!x)y'],
    ["claims.sub.matches('(?<n>a)\\\\k<n>')", '(?<n>a)\\k<n>'],
    ["claims.sub.matches('a++')", 'a++'],
  ])('refuses %s at load, naming the pattern', (source, pattern) => {
    const { e, problems } = compile(source);
    expect(e).toBeUndefined();
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(`x: matches() pattern '${pattern}' is not accepted by RE2: `);
    expect(problems[0]).toMatch(/ at position \d+$/);
  });

  // Every matches() call must reach RE2, wherever it sits: a call the load-time walk
  // missed would run the library's JS RegExp (and accept a lookahead).
  it.each([
    "claims.list.all(x, x.matches('(?=a)'))",
    "claims.list.exists(x, x.matches('(?=a)'))",
    "claims.list.exists_one(x, x.matches('(?=a)'))",
    "claims.list.map(x, x.matches('(?=a)'))",
    "claims.list.filter(x, x.matches('(?=a)')).size() > 0",
    "has(claims.a) ? claims.a.matches('(?=a)') : false",
    "{'k': claims.a.matches('(?=a)')}",
    "[true, claims.a.matches('(?=a)')]",
    "!(claims.a.matches('(?=a)') || false)",
  ])('finds the matches() call in %s', (source) => {
    expect(compile(source).problems).toEqual([expect.stringContaining("matches() pattern '(?=a)'")]);
  });

  it('still refuses a pattern longer than 256 characters', () => {
    expect(compile(`claims.sub.matches('${'a'.repeat(257)}')`).problems).toEqual([
      expect.stringMatching(/longer than 256 characters/),
    ]);
  });
});

describe('evaluation budget', () => {
  const heavy = "claims.list.all(x, x.matches('^[a-z0-9]+[a-z0-9._-]*[a-z0-9]+$'))";
  const withList = (n: number, budgetMs: number) =>
    new ExpressionInput(
      request,
      '/a',
      {
        ...principal,
        claims: Object.assign(Object.create(null), {
          list: Array.from({ length: n }, (_, i) => `user${i}.name`),
        }),
      },
      1_700_000_000,
      undefined,
      budgetMs,
    );

  it('is shared by every evaluation with the same input: their total is what counts', () => {
    const e = compile(heavy, 'bool').e!;
    // One evaluation over 2,000 values is well under a second; 1 ms of budget runs out after a few.
    const shared = withList(2000, 1);
    let evaluations = 0;
    expect(() => {
      for (; evaluations < 1000; evaluations++) e.evaluate(shared);
    }).toThrow(ExpressionBudgetError);
    expect(evaluations).toBeLessThan(1000);
    // Once spent, every further evaluation for that request refuses at once.
    expect(() => e.evaluate(shared)).toThrow(/evaluation budget of 1 ms exceeded/);
    // Another request has its own budget.
    expect(compile('true', 'bool').e!.evaluate(withList(1, 1))).toBe(true);
  });

  /** An input whose claim `slow` takes `pauses[i]` ms of CPU to read on the i-th read. */
  function pausing(pauses: number[], budgetMs: number) {
    let reads = 0;
    const claims = Object.create(null) as Record<string, unknown>;
    Object.defineProperty(claims, 'slow', {
      enumerable: true,
      get() {
        // Busy for that much CPU time (wall time alone would shrink when the machine is busy).
        const ms = pauses[reads++] ?? 0;
        const start = process.cpuUsage();
        for (;;) {
          const used = process.cpuUsage(start);
          if ((used.user + used.system) / 1000 >= ms) break;
        }
        return 'x';
      },
    });
    const input = new ExpressionInput(
      request,
      '/a',
      { ...principal, claims },
      1_700_000_000,
      undefined,
      budgetMs,
    );
    return { input, reads: () => reads };
  }

  it('one pause during a cheap evaluation does not deny: it is timed once more first', () => {
    const e = compile("claims.slow == 'x'", 'bool').e!;
    const { input, reads } = pausing([20], 5);
    expect(e.evaluate(input)).toBe(true);
    expect(reads()).toBe(2);
  });

  it('an evaluation that is slow when timed again is denied', () => {
    const e = compile("claims.slow == 'x'", 'bool').e!;
    const { input, reads } = pausing([20, 20], 5);
    expect(() => e.evaluate(input)).toThrow(ExpressionBudgetError);
    expect(reads()).toBe(2);
    // Far past the budget: no second run (an expensive expression is not paid for twice).
    const slow = pausing([400, 400], 50);
    expect(() => e.evaluate(slow.input)).toThrow(ExpressionBudgetError);
    expect(slow.reads()).toBe(1);
    // At most one second timing per request.
    const twice = pausing([25, 25, 25, 25], 40);
    expect(e.evaluate(twice.input)).toBe(true);
    expect(() => e.evaluate(twice.input)).toThrow(ExpressionBudgetError);
    expect(twice.reads()).toBe(3);
  });

  it('a generous budget lets the same work through', () => {
    const e = compile(heavy, 'bool').e!;
    const input = withList(2000, 1000);
    for (let i = 0; i < 5; i++) expect(e.evaluate(input)).toBe(true);
  });
});

describe('matches() program size', () => {
  // '^(.*/){0,600}[xy]$' is 20 characters: about 2 s on a 3,000-character value with re2js.
  it('refuses a pattern whose RE2 program has more than 1000 instructions, naming it', () => {
    const { e, problems } = compile("request.headers['x-p'].matches('^(.*/){0,600}[xy]$')");
    expect(e).toBeUndefined();
    expect(problems).toEqual([
      expect.stringMatching(
        /^x: matches\(\) pattern '\^\(\.\*\/\)\{0,600\}\[xy\]\$' is too large: its RE2 program has \d+ instructions, at most 1000 are accepted at position \d+$/,
      ),
    ]);
    expect(compile("request.headers['x-p'].matches('^(.*/){0,100}[xy]$')").problems).toEqual([]);
  });
});

describe('source / destination and the network functions', () => {
  const peerRequest = (address: string | undefined, certificate = false): AuthRequest => ({
    ...request,
    source: { address, port: 51234, principal: 'spiffe://cluster.local/ns/a/sa/b' },
    destination: { address: '10.0.0.7', port: 8443 },
    ...(certificate ? { clientCertificate: 'PEM' } : {}),
  });
  const run = (source: string, req: AuthRequest) =>
    compile(source).e!.evaluate(new ExpressionInput(req, '/a', principal, 1_700_000_000));

  it('reading source or destination makes an expression request-dependent', () => {
    expect(compile("source.principal == 'x'").e?.requestDependent).toBe(true);
    expect(compile("destination.address == 'x'").e?.requestDependent).toBe(true);
  });

  it('reads the peers; an absent peer reads as empty values', () => {
    const req = peerRequest('10.1.2.3', true);
    expect(run('source.port', req)).toBe(51234n);
    expect(run('source.certificate_present', req)).toBe(true);
    expect(run('source.certificate_present', peerRequest('10.1.2.3'))).toBe(false);
    expect(run('destination.port == 8443 && destination.principal == ""', req)).toBe(true);
    expect(run("source.address == '' && source.port == 0 && !source.certificate_present", request)).toBe(
      true,
    );
  });

  it('ip(), cidr(), containsIP, family(), isIP(), isCIDR()', () => {
    const req = peerRequest('10.1.2.3');
    expect(run("cidr('10.0.0.0/8').containsIP(ip(source.address))", req)).toBe(true);
    expect(run("cidr('10.0.0.0/16').containsIP(source.address)", req)).toBe(false);
    // An IPv4-mapped IPv6 address is matched as its IPv4 address.
    expect(run("cidr('10.0.0.0/8').containsIP(source.address)", peerRequest('::ffff:10.1.2.3'))).toBe(true);
    expect(run("ip('::1').family() == 6 && ip('127.0.0.1').family() == 4", req)).toBe(true);
    expect(run("isIP('10.0.0.1') && !isIP('10.0.0.256') && isCIDR('::/0') && !isCIDR('10.0.0.0')", req)).toBe(
      true,
    );
  });

  it('a value that is not an address at run time is an evaluation error that names no value', () => {
    expect(() => run('ip(source.address)', peerRequest('not-an-ip'))).toThrow(ExpressionError);
    expect(() => run('ip(source.address)', peerRequest('not-an-ip'))).not.toThrow(/not-an-ip/);
    expect(() => run("cidr(request.host).containsIP('10.0.0.1')", request)).toThrow(ExpressionError);
  });

  it('a bad literal is a load problem naming it', () => {
    expect(compile("cidr('10.0.0.0/33')").problems).toEqual([
      expect.stringMatching(/cidr\('10\.0\.0\.0\/33'\): prefix length 33 is too long at position 5/),
    ]);
    expect(compile("ip('1.2.3')").problems).toEqual([expect.stringMatching(/not an IP address/)]);
  });
});

describe('request.query', () => {
  it('hides a token parameter under every spelling a backend reads', () => {
    const { e } = compile('request.query');
    const value = e?.evaluate(
      new ExpressionInput(
        { ...request, rawPath: '/a?ACCESS_TOKEN=t1&access.token=t2&access%5Ftoken=t3&page=1&page=2' },
        '/a',
        principal,
        1_700_000_000,
        hiddenCredentials([], ['access_token']),
      ),
    );
    expect({ ...(value as Record<string, string>) }).toEqual({ page: '1' });
  });
});
