// .cpuprofile → self/inclusive time tables, dist/ frames mapped back to src/ via source maps.
import { readFileSync, existsSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { fileURLToPath } from 'node:url';
import { relative } from 'node:path';
import { ROOT } from './server.mjs';

const maps = new Map();
function sourceMapFor(file) {
  if (!maps.has(file)) {
    let sm = null;
    try {
      if (existsSync(`${file}.map`)) sm = new SourceMap(JSON.parse(readFileSync(`${file}.map`, 'utf8')));
    } catch {
      sm = null;
    }
    maps.set(file, sm);
  }
  return maps.get(file);
}

function location(cf) {
  const url = cf.url || '';
  if (!url) return '';
  let file = url.startsWith('file://') ? fileURLToPath(url) : url;
  const line = cf.lineNumber + 1;
  if (file.startsWith(ROOT)) {
    const rel = relative(ROOT, file);
    if (rel.startsWith('dist/')) {
      const sm = sourceMapFor(file);
      const e = sm?.findEntry(cf.lineNumber, cf.columnNumber);
      if (e && e.originalSource) {
        const src = e.originalSource.startsWith('file://') ? fileURLToPath(e.originalSource) : e.originalSource;
        const srcRel = src.includes('/src/') ? `src/${src.split('/src/').pop()}` : src;
        return `${srcRel}:${e.originalLine + 1}`;
      }
    }
    return `${rel.replace(/^node_modules\//, '')}:${line}`;
  }
  return `${file}:${line}`;
}

/** Category of a frame: a package, a src file, node internals, or V8 pseudo-frames. */
function category(cf, loc) {
  if (!cf.url) return cf.functionName.startsWith('(') ? cf.functionName : '(native)';
  if (loc.startsWith('src/')) return loc.split(':')[0];
  if (loc.startsWith('node:internal/')) return 'node:internal/' + loc.slice(14).split(/[/:]/)[0]; // http2, crypto, streams…
  if (loc.startsWith('node:')) return 'node:' + loc.slice(5).split('/')[0].split(':')[0];
  const m = /^(@[^/]+\/[^/]+|[^/]+)\//.exec(loc);
  return m ? m[1] : loc;
}

/**
 * `window`: { from, to } in µs of the monotonic clock (process.hrtime, which V8's profile
 * timestamps share on Linux): only the samples taken in it count.
 */
export function analyzeProfile(file, top = 25, window) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map();
  const parent = new Map();
  for (const n of prof.nodes) byId.set(n.id, n);
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const key = new Map();
  const cat = new Map();
  for (const n of prof.nodes) {
    const loc = location(n.callFrame);
    key.set(n.id, `${n.callFrame.functionName || '(anonymous)'}${loc ? ` ${loc}` : ''}`);
    cat.set(n.id, category(n.callFrame, loc));
  }
  const selfUs = new Map();
  const inclUs = new Map();
  const catUs = new Map();
  let total = 0;
  const { samples, timeDeltas } = prof;
  let at = prof.startTime;
  for (let i = 0; i < samples.length; i++) {
    at += timeDeltas[i];
    if (window && (at < window.from || at > window.to)) continue;
    const dt = timeDeltas[i + 1] ?? 0; // time until the next sample is this sample's
    const id = samples[i];
    total += dt;
    const k = key.get(id);
    selfUs.set(k, (selfUs.get(k) ?? 0) + dt);
    catUs.set(cat.get(id), (catUs.get(cat.get(id)) ?? 0) + dt);
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const kk = key.get(cur);
      if (seen.has(kk)) continue;
      seen.add(kk);
      inclUs.set(kk, (inclUs.get(kk) ?? 0) + dt);
    }
  }
  const idle = selfUs.get('(idle)') ?? 0;
  const busy = total - idle;
  const rows = (m, n, filter = () => true) =>
    [...m.entries()]
      .filter(([k]) => filter(k))
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => ({ fn: k, ms: Math.round(us / 1000), pct_busy: Math.round((1000 * us) / busy) / 10 }));
  // Whose code the busy time ran in: ours, a package's, Node's, the GC's, or V8's own.
  const groups = { 'src/': 0, packages: 0, 'node:': 0, gc: 0, 'v8 (program, native)': 0 };
  for (const [c, us] of catUs) {
    if (c === '(idle)') continue;
    const g = c.startsWith('src/')
      ? 'src/'
      : c.startsWith('node:')
        ? 'node:'
        : c === '(garbage collector)'
          ? 'gc'
          : c.startsWith('(')
            ? 'v8 (program, native)'
            : 'packages';
    groups[g] += us;
  }
  return {
    file,
    groups: Object.fromEntries(Object.entries(groups).map(([g, us]) => [g, Math.round(us / 1000)])),
    total_ms: Math.round(total / 1000),
    idle_ms: Math.round(idle / 1000),
    self: rows(selfUs, top, (k) => k !== '(idle)'),
    inclusive_src: rows(inclUs, 20, (k) => / src\//.test(k)),
    by_category: rows(catUs, 20, (k) => k !== '(idle)'),
  };
}

export function printProfile(p, log = console.log) {
  log(`\nCPU profile ${p.file}`);
  log(`  sampled ${p.total_ms} ms, idle ${p.idle_ms} ms; percentages are of busy (non-idle) time\n`);
  const table = (title, rows) => {
    log(`  ${title}`);
    for (const r of rows) log(`  ${String(r.ms).padStart(7)} ms ${String(r.pct_busy).padStart(5)}%  ${r.fn}`);
    log('');
  };
  table('top self time (function, source location):', p.self);
  table('self time by package / src file:', p.by_category);
  table('inclusive time of src/ functions:', p.inclusive_src);
}
