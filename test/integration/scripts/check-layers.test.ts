import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

// scripts/check-layers.mjs on small fixture trees (--root), and on this project.
const script = fileURLToPath(new URL('../../../scripts/check-layers.mjs', import.meta.url));
const dirs: string[] = [];

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'check-layers-'));
  dirs.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

function run(...args: string[]) {
  const r = spawnSync(process.execPath, [script, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('check-layers', () => {
  it('accepts imports on the map', () => {
    const root = tree({
      'src/core/time.ts': 'export const t = 1;\n',
      'src/authz/path.ts': "import { t } from '../core/time.js';\nexport const p = t;\n",
      'src/check/pipeline.ts': "import { p } from '../authz/path.js';\nexport const q = p;\n",
    });
    const r = run('--root', root);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('3 files');
  });

  it('refuses a sibling import the map does not list and a file cycle, naming both', () => {
    const root = tree({
      'src/authn/verify.ts': 'export const v = 1;\n',
      // authz and authn are independent siblings: lower than check, but not of each other.
      'src/authz/claims.ts': "import { v } from '../authn/verify.js';\nexport const c = v;\n",
      'src/core/a.ts': "import { b } from './b.js';\nexport const a = () => b;\n",
      'src/core/b.ts': "import { a } from './a.js';\nexport const b = () => a;\n",
    });
    const r = run('--root', root);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'src/authz/claims.ts imports src/authn/verify.ts: "authz" may not import from "authn"',
    );
    expect(r.stderr).toMatch(/import cycle: src\/core\/a\.ts -> src\/core\/b\.ts -> src\/core\/a\.ts/);
    expect(r.stderr).toContain('check-layers: 2 problem(s)');
  });

  it('refuses oauth importing check (a dynamic import counts too) and a folder with no entry', () => {
    const root = tree({
      'src/check/pipeline.ts': 'export const p = 1;\n',
      'src/oauth/token.ts': "export const load = () => import('../check/pipeline.js');\n",
      'src/extras/x.ts': 'export const x = 1;\n',
    });
    const r = run('--root', root);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('"oauth" may not import from "check"');
    expect(r.stderr).toContain('src/extras/x.ts: folder "extras" has no entry in the map');
  });

  it("passes on this project's src/ and prints the map with --graph", () => {
    const r = run('--graph');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^authz +-> config, core$/m);
    expect(r.stdout).toMatch(/^core +-> \(nothing\)$/m);
  });
});
