// The README is the front door: what it tells a newcomer to run must work as written.
// (The walk-through's `npm run demo:envoy` and its curl commands are run by
// test/e2e/demo-envoy.e2e.test.ts; the runnable blocks of every page by docs-runnable.)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fencedBlocks } from '../helpers/markdown.js';

const ROOT = join(import.meta.dirname, '..', '..');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const blocks = fencedBlocks(README, 'README.md');
const dir = mkdtempSync(join(tmpdir(), 'authz-readme-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[]) {
  return spawnSync(process.execPath, [join(ROOT, 'dist/main.js'), ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    env: { ...process.env, AUTHZ_CONFIG: '' },
  });
}

describe('README.md', () => {
  it('stays a front door (under 300 lines)', () => {
    expect(README.split('\n').length).toBeLessThan(300);
  });

  it('names only npm scripts that exist', () => {
    const scripts = (
      JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
        scripts: Record<string, string>;
      }
    ).scripts;
    const named = new Set<string>();
    for (const b of blocks) {
      for (const m of b.body.matchAll(/\bnpm (start|test)\b/g)) named.add(m[1]!);
      for (const m of b.body.matchAll(/\bnpm run ([\w:-]+)/g)) named.add(m[1]!);
    }
    expect([...named]).toEqual(expect.arrayContaining(['start', 'test', 'demo:envoy']));
    for (const name of named) expect(scripts[name], `npm script "${name}"`).toBeDefined();
  });

  it('"Your own config" passes check-config as written', () => {
    const block = blocks.find((b) => b.lang === 'yaml' && b.body.startsWith('# my-config.yaml'));
    expect(block, 'the README shows my-config.yaml').toBeDefined();
    const file = join(dir, 'my-config.yaml');
    writeFileSync(file, block!.body);
    // --fetch would reach the example identity provider; the structure is what is checked here.
    const r = cli(['check-config', '--config', file]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    // The error the README quotes for a missing audiences is the one the service prints.
    writeFileSync(file, block!.body.replace(/^\s*audiences:.*\n/m, ''));
    const bad = cli(['check-config', '--config', file]);
    expect(bad.status).toBe(1);
    expect(README).toContain('`issuers[0].audiences: required`');
    expect(bad.stderr + bad.stdout).toContain('issuers[0].audiences: required');
  });
});
