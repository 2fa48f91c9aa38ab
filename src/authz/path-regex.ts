// `rules[].match.path_regex`: RE2 syntax and semantics (like Envoy's route `safe_regex`),
// matched against the whole normalised path in time linear in the path (re2js, the pure-JS
// port of RE2 that CEL `matches()` uses too). Compiled once at load; what RE2 refuses
// (backreferences, lookaround, possessive quantifiers, JavaScript-only escapes) and
// programs larger than MAX_PROGRAM_SIZE are config errors.
//
// re2js costs a few hundred nanoseconds a call where a JS RegExp costs tens, so a path
// that cannot match is turned away first by the pattern's literal prefix (`/users/` of
// `/users/[0-9]+`), which RE2 itself computes: every match starts with it, so the check
// never rejects a path the pattern accepts.

import { RE2JS } from 're2js';

/**
 * Largest accepted RE2 program (instructions, as RE2 counts them; Envoy has the same kind
 * of limit). Matching is linear in the path, times the part of the program active at once:
 * a program of thousands of instructions can take a second on a 3,000-character path.
 */
export const MAX_PROGRAM_SIZE = 1000;

/** A path_regex compiled with RE2. */
export class PathRegex {
  private constructor(
    private readonly re: RE2JS,
    /** What every matching path starts with ("" when nothing is known). */
    private readonly prefix: string,
    /** The prefix compares ignoring case (case_sensitive: false). */
    private readonly folded: boolean,
  ) {}

  /** The compiled pattern, or why it is refused. */
  static compile(pattern: string, caseInsensitive: boolean): PathRegex | string {
    const quoted = `'${pattern.length > 80 ? `${pattern.slice(0, 80)}…` : pattern}'`;
    let re: RE2JS;
    try {
      re = RE2JS.compile(pattern, caseInsensitive ? RE2JS.CASE_INSENSITIVE : 0);
    } catch (err) {
      // "error parsing regexp: invalid or unsupported Perl syntax: `(?=`"
      const why = (err as Error).message.replace(/^error parsing regexp: /, '');
      return `pattern ${quoted} is not accepted by RE2: ${why}`;
    }
    const size = re.programSize();
    if (size > MAX_PROGRAM_SIZE) {
      return `pattern ${quoted} is too large: its RE2 program has ${size} instructions, at most ${MAX_PROGRAM_SIZE} are accepted`;
    }
    return new PathRegex(re, literalPrefix(pattern), caseInsensitive);
  }

  /** The literal prefix used to turn paths away early (for tests and benchmarks). */
  get requiredPrefix(): string {
    return this.prefix;
  }

  /** Whether the whole path matches (RE2 full match: anchored at both ends). */
  matches(path: string): boolean {
    if (this.prefix.length > 0) {
      if (this.folded ? !mayStartFolded(path, this.prefix) : !path.startsWith(this.prefix)) return false;
    }
    return this.re.testExact(path);
  }
}

/**
 * The literal every full match of `pattern` starts with, as RE2 computes it from the
 * case-sensitive program. A leading "^" always holds at the start of a whole-path match,
 * so the prefix is taken from what follows it (not when "^" is itself repeated: "^*").
 * A case-insensitive program matches only strings that fold to ones the case-sensitive
 * program matches, so the same prefix holds for it, compared with folding.
 */
function literalPrefix(pattern: string): string {
  const next = pattern.charAt(1);
  const body = pattern.startsWith('^') && next !== '' && !'*+?{'.includes(next) ? pattern.slice(1) : pattern;
  try {
    const prefix: unknown = RE2JS.compile(body).re2().prefix;
    return typeof prefix === 'string' ? prefix : '';
  } catch {
    return '';
  }
}

/**
 * Whether `path` may start with `prefix` under RE2's case folding: ASCII letters compare
 * ignoring case; at a non-ASCII character RE2 decides (Unicode folds the Kelvin sign to
 * "k" and the long s to "s").
 */
function mayStartFolded(path: string, prefix: string): boolean {
  if (path.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    const c = path.charCodeAt(i);
    const p = prefix.charCodeAt(i);
    if (c === p) continue;
    if (c > 127 || p > 127) return true;
    const lc = c | 32;
    if (lc !== (p | 32) || lc < 97 || lc > 122) return false;
  }
  return true;
}
