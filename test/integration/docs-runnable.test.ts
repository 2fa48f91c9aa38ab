// Every shell block of README.md and docs/**/*.md whose fence says `runnable`
// (```` ```sh runnable ````) is run as written: bash -e -o pipefail, in a fresh temporary
// folder, with `envoy-jwt-authz` on the PATH (the built CLI, `node <repo>/dist/main.js`) and
// AUTHZ_GRPC_ADDRESS / AUTHZ_HTTP_ADDRESS set to free ports, so a block may start the
// service. A block that exits non-zero or outlives its timeout fails with its file:line.
// Attributes after `runnable`: `timeout=SECONDS` (default 60), `needs=cmd1,cmd2` (skipped,
// visibly, when a command is not on the PATH). How many shell blocks of each page ran and
// how many are left unmarked is printed. The convention is described in CONTRIBUTING.md.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  docPages,
  fencedBlocks,
  pageBlocks,
  SHELL_LANGUAGES,
  type FencedBlock,
} from '../helpers/markdown.js';
import { freePort } from '../helpers/redis.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const MAIN = join(ROOT, 'dist/main.js');
const DEFAULT_TIMEOUT_SECONDS = 60;

const isShell = (b: FencedBlock) => SHELL_LANGUAGES.has(b.lang);
const isRunnable = (b: FencedBlock) => b.attributes.has('runnable');

const onPath = (cmd: string) =>
  spawnSync('bash', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** The commands a block's `needs=` names that are not on the PATH. */
const missingTools = (b: FencedBlock) =>
  String(b.attributes.get('needs') ?? '')
    .split(',')
    .filter((cmd) => cmd !== '' && !onPath(cmd));

/** A folder holding `envoy-jwt-authz`, the built CLI, for the blocks' PATH. */
function cliBinFolder(root: string): string {
  const bin = join(root, 'bin');
  mkdirSync(bin);
  const shim = join(bin, 'envoy-jwt-authz');
  writeFileSync(shim, `#!/bin/sh\nexec "${process.execPath}" "${MAIN}" "$@"\n`);
  chmodSync(shim, 0o755);
  return bin;
}

const scratch: string[] = [];
afterAll(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

/**
 * Runs one block with bash in a fresh folder; resolves with its exit status (null when
 * killed at the timeout) and its output. Everything the block started in the background
 * (a service) is stopped afterwards: the block runs in its own process group.
 */
async function runBlock(
  block: FencedBlock,
): Promise<{ code: number | null; output: string; timedOut: boolean }> {
  const root = mkdtempSync(join(tmpdir(), 'authz-docs-'));
  scratch.push(root);
  const work = join(root, 'work');
  mkdirSync(work);
  const script = join(root, 'block.sh');
  writeFileSync(script, block.body);
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const child = spawn('bash', ['-e', '-o', 'pipefail', script], {
    cwd: work,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      PATH: `${cliBinFolder(root)}:${process.env.PATH ?? ''}`,
      HOME: root,
      AUTHZ_GRPC_ADDRESS: `127.0.0.1:${grpcPort}`,
      AUTHZ_HTTP_ADDRESS: `127.0.0.1:${httpPort}`,
      AUTHZ_CONFIG: undefined,
    },
  });
  let output = '';
  child.stdout.on('data', (b) => (output += b));
  child.stderr.on('data', (b) => (output += b));
  const seconds = Number(block.attributes.get('timeout') ?? DEFAULT_TIMEOUT_SECONDS);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    process.kill(-child.pid!, 'SIGKILL');
  }, seconds * 1000);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearTimeout(timer);
  try {
    process.kill(-child.pid!, 'SIGKILL'); // what the block left running
  } catch {
    /* the group is already gone */
  }
  return { code, output, timedOut };
}

/** The failure message of a block: its file:line first, then the end of its output. */
function verdict(block: FencedBlock, r: { code: number | null; output: string; timedOut: boolean }): string {
  const why = r.timedOut
    ? `did not finish within ${block.attributes.get('timeout') ?? DEFAULT_TIMEOUT_SECONDS} s`
    : `exited ${r.code}`;
  return `${block.file}:${block.line}: runnable block ${why}\n${r.output.split('\n').slice(-40).join('\n')}`;
}

const pages = docPages(ROOT).map((page) => ({ page, blocks: pageBlocks(ROOT, page) }));

describe('runnable shell blocks of the docs', () => {
  it('reports, per page, the shell blocks run and those left unmarked', () => {
    const lines: string[] = [];
    for (const { page, blocks } of pages) {
      const shell = blocks.filter(isShell);
      if (shell.length === 0) continue;
      const marked = shell.filter(isRunnable);
      const skipped = marked.filter((b) => missingTools(b).length > 0).length;
      const unmarked = shell.filter((b) => !isRunnable(b)).map((b) => b.line);
      lines.push(
        `  ${page}: ${marked.length - skipped} run, ${skipped} skipped (missing tools), ` +
          `${unmarked.length} left unmarked` +
          (unmarked.length > 0 ? ` (lines ${unmarked.join(', ')})` : ''),
      );
    }
    console.log(`[docs-runnable] shell blocks:\n${lines.join('\n')}`);
    // `runnable` on anything but a shell block would silently never run.
    const misplaced = pages.flatMap(({ blocks }) =>
      blocks
        .filter((b) => isRunnable(b) && !isShell(b))
        .map((b) => `${b.file}:${b.line} (${b.lang || 'no language'})`),
    );
    expect(misplaced, 'runnable blocks that are not sh/bash').toEqual([]);
    // Blocks run under pipefail: `… | grep -q` exits at the first match and the writer's
    // SIGPIPE would fail a block whose match held (`grep` without -q reads to the end).
    const quietGreps = pages.flatMap(({ blocks }) =>
      blocks
        .filter(isRunnable)
        .filter((b) => /\|\s*grep\s+(-\w*q|--quiet)/.test(b.body))
        .map((b) => `${b.file}:${b.line}`),
    );
    expect(quietGreps, 'runnable blocks piping into grep -q').toEqual([]);
    expect(pages.flatMap(({ blocks }) => blocks.filter(isRunnable)).length).toBeGreaterThanOrEqual(3);
  });

  it('the runner fails a block that exits non-zero, naming its file:line', async () => {
    expect(existsSync(MAIN), 'dist/main.js is missing: run `npm run build` (npm test does)').toBe(true);
    const [ok, failing] = fencedBlocks(
      [
        'text',
        '```sh runnable',
        'envoy-jwt-authz --version',
        '```',
        '',
        '```sh runnable',
        'envoy-jwt-authz check-config --config missing.yaml',
        'echo never reached',
        '```',
      ].join('\n'),
      'docs/example.md',
    );
    const good = await runBlock(ok!);
    expect(good.code, good.output).toBe(0);
    const bad = await runBlock(failing!);
    expect(bad.code).toBe(1);
    const message = verdict(failing!, bad);
    expect(message).toMatch(/^docs\/example\.md:6: runnable block exited 1\n/);
    expect(message).toContain('config file not found: missing.yaml');
    expect(message).not.toContain('never reached');
  });

  it('the runner stops a block at its timeout, and what a block left running', async () => {
    const [slow, leaves] = fencedBlocks(
      [
        '```sh runnable timeout=1',
        'sleep 30',
        '```',
        '```bash runnable',
        'sleep 300 &',
        'echo "pid=$!"',
        '```',
      ].join('\n'),
      'docs/slow.md',
    );
    const r = await runBlock(slow!);
    expect(r.timedOut).toBe(true);
    expect(verdict(slow!, r)).toMatch(/^docs\/slow\.md:1: runnable block did not finish within 1 s\n/);
    const left = await runBlock(leaves!);
    expect(left.code).toBe(0);
    const pid = Number(/pid=(\d+)/.exec(left.output)![1]);
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (let i = 0; i < 50 && alive(); i++) await new Promise((r) => setTimeout(r, 100)); // real process exit
    expect(alive()).toBe(false);
  });

  it('`npx envoy-jwt-authz` runs the built CLI in the repository (after npm ci)', () => {
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string })
      .version;
    // --no-install: the project's own bin must be found, never a package of that name
    // from the registry. (`npx --no` would read `--version` as npm's own option.)
    const r = spawnSync('npx', ['--no-install', 'envoy-jwt-authz', '--version'], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(version);
  }, 70_000);

  for (const { page, blocks } of pages) {
    const runnable = blocks.filter((b) => isShell(b) && isRunnable(b));
    if (runnable.length === 0) continue;
    describe(page, () => {
      for (const block of runnable) {
        const missing = missingTools(block);
        if (missing.length > 0)
          console.warn(`[docs-runnable] SKIPPED ${block.file}:${block.line}: needs ${missing.join(', ')}`);
        const seconds = Number(block.attributes.get('timeout') ?? DEFAULT_TIMEOUT_SECONDS);
        it.skipIf(missing.length > 0)(
          `${block.file}:${block.line} runs and exits 0`,
          async () => {
            expect(existsSync(MAIN), 'dist/main.js is missing: run `npm run build` (npm test does)').toBe(
              true,
            );
            const r = await runBlock(block);
            expect(r.code, verdict(block, r)).toBe(0);
          },
          (seconds + 15) * 1000,
        );
      }
    });
  }
});
