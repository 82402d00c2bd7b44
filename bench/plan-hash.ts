// Issue 20, the submit's share of an apply: every submit hashes its plan (planHash) and compares the new site
// with the current one (sameContent), both through canonicalJson. This times canonicalJson as it is now (plain
// data written by JSON.stringify with a sorted key list) against the walk that defines it
// (canonicalJsonByWalk, what every submit ran before), side by side in this process, on a generated site's
// plan from nothing and on the whole site, at 10,000 and 100,000 VMs. Each figure is the median of
// XSM_BENCH_RUNS (default 5) timed calls, with min-max, after one untimed call of each; the two alternate so
// drift hits both. Both give the same text (checked here on every size, and in test/site/plan-hash.test.ts).
//
// Run: npx tsx bench/plan-hash.ts [--help]
import { canonicalJson, canonicalJsonByWalk } from '../src/site/plan-hash.ts';
import { loadSite } from '../src/site/parse.ts';
import { planChanges } from '../src/site/plan.ts';
import { serializeSite } from '../src/site/serialize.ts';
import { median, spread, table } from './figures.ts';
import { generateSite } from './generate.ts';
import { benchOptions } from './options.ts';

// No options: --help prints this, anything else is refused with it.
benchOptions({}, 'usage: npx tsx bench/plan-hash.ts   (environment: XSM_BENCH_RUNS, default 5)');
const RUNS = Number(process.env.XSM_BENCH_RUNS ?? 5);

/** Milliseconds of each call, RUNS times per writer, the writers alternating, after one untimed call each. */
function timed(value: unknown): { now: number[]; walk: number[]; bytes: number } {
  const text = canonicalJson(value);
  if (text !== canonicalJsonByWalk(value)) throw new Error('canonicalJson and the walk gave different texts');
  const now: number[] = [];
  const walk: number[] = [];
  for (let r = 0; r < RUNS; r++)
    for (const [f, out] of r % 2
      ? [[canonicalJsonByWalk, walk] as const, [canonicalJson, now] as const]
      : [[canonicalJson, now] as const, [canonicalJsonByWalk, walk] as const]) {
      const t = performance.now();
      f(value);
      out.push(performance.now() - t);
    }
  return { now, walk, bytes: text.length };
}

const rows: string[][] = [];
for (const vms of [10_000, 100_000]) {
  const loaded = loadSite(serializeSite(generateSite(vms / 10, vms, 7)), 'generated.xml');
  if (!loaded.ok) throw new Error('the generated site does not load');
  // As makePlan stores it: without source positions.
  const actions: unknown = JSON.parse(
    JSON.stringify(planChanges(undefined, loaded.site).actions, (k, v: unknown) => (k === 'pos' ? undefined : v)),
  );
  for (const [what, value] of [
    ['plan (planHash)', actions],
    ['site (sameContent, once)', loaded.site],
  ] as const) {
    const r = timed(value);
    rows.push([
      vms.toLocaleString('en-US'),
      what,
      `${(r.bytes / 1e6).toFixed(1)} MB`,
      spread(r.walk, 1),
      spread(r.now, 1),
      (median(r.walk) / median(r.now)).toFixed(2),
    ]);
  }
}
console.log(`canonicalJson, ms per call, median (min–max) of ${RUNS}; baseline: the walk, same process`);
console.log(table(['VMs', 'value', 'text', 'walk (before) ms', 'now ms', 'walk / now'], rows));
