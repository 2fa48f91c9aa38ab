import { parseArgs } from 'node:util';
import { AuthzError } from '../core/errors.js';

/** A command line the commands cannot run: printed with the command's usage, exit 2. */
export class UsageError extends AuthzError {
  readonly code = 'ERR_USAGE';
}

export type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>;

/** node:util parseArgs (strict, no positionals) plus --debug/--help; errors become UsageError. */
export function parseOptions(
  args: string[],
  options: OptionSpec,
): { values: Record<string, string | boolean | string[] | undefined> } {
  // A value that starts with "-" (a base64url token can) must not be read as an option:
  // join `--name value` into `--name=value` for every string option.
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = args[i]!.startsWith('--') ? args[i]!.slice(2) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && i + 1 < args.length) {
      joined.push(`--${name}=${args[++i]}`);
    } else joined.push(args[i]!);
  }
  args = joined;
  try {
    const { values } = parseArgs({
      args,
      options: { ...options, debug: { type: 'boolean' }, help: { type: 'boolean' } },
      strict: true,
      allowPositionals: false,
    });
    return { values: values };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}
