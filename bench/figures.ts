// How the benchmarks print figures: the median of several runs with their min–max, in Markdown tables
// that paste into docs/benchmarks.md as they are.

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

/** "median (min–max)" with `digits` decimals. */
export function spread(xs: number[], digits = 0): string {
  const f = (n: number) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
}

/** Ratio of the medians, a over b, as "1.23". */
export function ratio<T>(f: (r: T) => number, a: T[], b: T[]): string {
  return (median(a.map(f)) / median(b.map(f))).toFixed(2);
}

export function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(w[i]!)).join(' | ')} |`;
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}
