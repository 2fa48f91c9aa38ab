#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { ConfigError } from './core/errors.js';
import { UsageError } from './cli/args.js';
import { checkCommand } from './cli/check-command.js';
import { checkConfigCommand } from './cli/check-config.js';
import { keygenCommand } from './cli/keygen.js';
import { mintCommand } from './cli/mint.js';
import { serveCommand } from './cli/serve.js';
import { nameAddressSource, StartupError } from './cli/startup.js';
import { COMMAND_HELP, commandUsage, helpCommand, USAGE } from './cli/usage.js';

const VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

const EXIT_CONFIG = 1;
const EXIT_USAGE = 2;

const COMMANDS: Record<string, (args: string[]) => Promise<void>> = {
  serve: serveCommand,
  'check-config': checkConfigCommand,
  keygen: keygenCommand,
  mint: mintCommand,
  check: checkCommand,
  help: helpCommand,
};

/**
 * A reader that goes away before the output is written (`keygen | head -c1`, `help | false`)
 * ends the command quietly with exit 0, as the reader asked for no more; never a stack trace.
 * Other write errors on the standard streams are one line, exit 1.
 */
function quietOnClosedOutput(debug: boolean): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      if (stream !== process.stderr)
        process.stderr.write(
          `error: cannot write the output: ${err.message}${debug && err.stack ? `\n${err.stack}` : ''}\n`,
        );
      process.exit(EXIT_CONFIG);
    });
  }
}

export async function main(argv: string[]): Promise<void> {
  const debug = argv.includes('--debug');
  quietOnClosedOutput(debug);
  let [command, ...rest] = argv;
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  if (command === undefined || command.startsWith('-')) {
    if (command === '--help' || command === '-h') {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    rest = argv;
    command = 'serve';
  }
  const run = COMMANDS[command];
  try {
    if (!run) throw new UsageError(`unknown command "${command}"`);
    if (command !== 'help' && (rest.includes('--help') || rest.includes('-h'))) {
      process.stdout.write(commandUsage(command));
      return;
    }
    await run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      const usage = command in COMMAND_HELP ? commandUsage(command) : `${USAGE}\n`;
      process.stderr.write(`error: ${err.message}\n\n${usage}`);
      process.exit(EXIT_USAGE);
    }
    // A listen address set by AUTHZ_GRPC_ADDRESS / AUTHZ_HTTP_ADDRESS is blamed on that variable.
    if (err instanceof ConfigError) {
      process.stderr.write(`${new ConfigError(err.problems.map((p) => nameAddressSource(p))).message}\n`);
      process.exit(EXIT_CONFIG);
    }
    if (err instanceof StartupError) {
      process.stderr.write(`${err.problems.map((p) => `error: ${nameAddressSource(p)}`).join('\n')}\n`);
      process.exit(EXIT_CONFIG);
    }
    const e = err as Error & { code?: string };
    process.stderr.write(`error: ${e.message}${debug && e.stack ? `\n${e.stack}` : ''}\n`);
    process.exit(EXIT_CONFIG);
  }
}

void main(process.argv.slice(2));
