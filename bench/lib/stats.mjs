/** Percentiles (ms) of a Float64Array/array of latencies in ms. */
export function latencyStats(values) {
  const a = Float64Array.from(values).sort();
  const n = a.length;
  if (n === 0) return { count: 0 };
  const q = (p) => a[Math.min(n - 1, Math.max(0, Math.ceil(p * n) - 1))];
  let sum = 0;
  for (let i = 0; i < n; i++) sum += a[i];
  const r = (x) => Math.round(x * 1000) / 1000;
  return { count: n, min: r(a[0]), p50: r(q(0.5)), p90: r(q(0.9)), p99: r(q(0.99)), p999: r(q(0.999)), max: r(a[n - 1]), mean: r(sum / n) };
}
