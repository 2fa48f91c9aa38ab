// Shared by the in-process speed scripts (encode-speed, decode-speed): their options and
// how a row's rounds are summarised.
import { parseArgs } from 'node:util';

/** --iterations N (per round) and --rounds N; exits 2 when either is not a positive number. */
export function iterationsAndRounds({ iterations = '200000', rounds = '5' } = {}) {
  const { values } = parseArgs({
    options: { iterations: { type: 'string', default: iterations }, rounds: { type: 'string', default: rounds } },
    strict: true,
  });
  const out = { iterations: Number(values.iterations), rounds: Number(values.rounds) };
  if (!(out.iterations >= 1) || !(out.rounds >= 1)) {
    console.error('--iterations and --rounds must be positive numbers');
    process.exit(2);
  }
  return out;
}

export const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
