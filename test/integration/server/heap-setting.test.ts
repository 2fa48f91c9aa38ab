// One V8 heap setting for every way the service is started: NODE_OPTIONS, defaulting to
// --max-old-space-size=256 in `npm start` and the Docker image, and set by the Helm
// chart. No --max-old-space-size on a command line, which would silently win over it.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const ROOT = new URL('../../../', import.meta.url).pathname;
const PROBE = `-e "process.stdout.write(String(require('v8').getHeapStatistics().heap_size_limit / 2 ** 20))"`;

/** The heap limit (MB) a process started like `command` gets, with env NODE_OPTIONS. */
function heapLimit(command: string, nodeOptions: string | undefined): number {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  if (nodeOptions !== undefined) env.NODE_OPTIONS = nodeOptions;
  return Number(execFileSync('sh', ['-c', command], { env, encoding: 'utf8' }));
}

// V8 adds its young generation to the old-space limit: compare with a tolerance.
const near = (mb: number, oldSpace: number) => mb >= oldSpace && mb < oldSpace + 100;

describe('V8 heap setting', () => {
  it('npm start: --max-old-space-size=256 by default, the caller’s NODE_OPTIONS when set', () => {
    const start = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')).scripts.start as string;
    expect(start).not.toMatch(/node --max-old-space-size/);
    const probe = start.replace('node dist/main.js serve', `node ${PROBE}`);
    expect(probe).not.toBe(start);
    expect(near(heapLimit(probe, undefined), 256)).toBe(true);
    expect(near(heapLimit(probe, '--max-old-space-size=512'), 512)).toBe(true);
  });

  it('the image sets it as ENV NODE_OPTIONS and the manifest’s value is the one that applies', () => {
    const dockerfile = readFileSync(`${ROOT}Dockerfile`, 'utf8');
    const env = /^ENV NODE_OPTIONS=(\S+)$/m.exec(dockerfile)?.[1];
    expect(env).toBe('--max-old-space-size=256');
    const entrypoint = JSON.parse(/^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)![1]!) as string[];
    expect(entrypoint).toEqual(['node', 'dist/main.js']);
    // The image's command line with the image default, then with the manifest's override.
    const command = `${entrypoint[0]} ${PROBE}`;
    expect(near(heapLimit(command, env), 256)).toBe(true);
    // The Helm chart's value (the Deployment's NODE_OPTIONS; test/integration/k8s-deploy.test.ts
    // checks that the rendered Deployment carries it).
    const fromManifest = parse(readFileSync(`${ROOT}deploy/helm/envoy-jwt-authz/values.yaml`, 'utf8'))
      .nodeOptions as string;
    const mb = Number(/--max-old-space-size=(\d+)/.exec(fromManifest)![1]);
    expect(near(heapLimit(command, fromManifest), mb)).toBe(true);
  });
});
