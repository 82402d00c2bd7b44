// Issue 2 benchmark: parse + validate + plan, from XML text to Plan, for a site of 1,000 hosts and
// 10,000 VMs against a copy with 5% of VMs moved, created, resized or removed. Baseline, in the same run:
// the same pipeline on a site ten times smaller (100 hosts, 1,000 VMs), so the ratio shows how it scales.
// Run: npx tsx bench/plan.ts   (add --expose-gc via NODE_OPTIONS for steadier memory figures)
import { loadSite } from '../src/site/parse.ts';
import { serializeSite } from '../src/site/serialize.ts';
import { planChanges } from '../src/site/plan.ts';
import { formatTable } from '../src/site/plan-format.ts';
import type { Site } from '../src/site/model.ts';
import { changeSite, generateSite } from './generate.ts';

interface Run {
  label: string;
  bytes: number;
  parseMs: number;
  planMs: number;
  totalMs: number;
  actions: number;
  waves: number;
  rssMiB: number;
  heapMiB: number;
}

function mustLoad(xml: string, file: string): Site {
  const r = loadSite(xml, file);
  if (!r.ok)
    throw new Error(
      `${file}: ${r.errors
        .slice(0, 3)
        .map((e) => e.message)
        .join('; ')}`,
    );
  return r.site;
}

function run(label: string, hosts: number, vms: number): Run {
  const base = generateSite(hosts, vms);
  const oldXml = serializeSite(base);
  const newXml = serializeSite(changeSite(base, 0.05));
  globalThis.gc?.();
  let peakRss = process.memoryUsage().rss;
  let peakHeap = process.memoryUsage().heapUsed;
  const sample = () => {
    const m = process.memoryUsage();
    peakRss = Math.max(peakRss, m.rss);
    peakHeap = Math.max(peakHeap, m.heapUsed);
  };
  const t0 = performance.now();
  const a = mustLoad(oldXml, 'old.xml');
  sample();
  const b = mustLoad(newXml, 'new.xml');
  sample();
  const t1 = performance.now();
  const plan = planChanges(a, b);
  const t2 = performance.now();
  sample();
  return {
    label,
    bytes: oldXml.length + newXml.length,
    parseMs: t1 - t0,
    planMs: t2 - t1,
    totalMs: t2 - t0,
    actions: plan.actions.length,
    waves: plan.waves,
    rssMiB: peakRss / 2 ** 20,
    heapMiB: peakHeap / 2 ** 20,
  };
}

run('warm-up', 100, 1000);
const baseline = run('baseline 100 hosts / 1,000 VMs', 100, 1000);
const target = run('1,000 hosts / 10,000 VMs', 1000, 10000);
const f = (n: number) => n.toFixed(1);
process.stdout.write(
  formatTable(
    [
      'run',
      'XML MiB',
      'parse+validate ms',
      'plan ms',
      'total ms',
      'x baseline',
      'actions',
      'waves',
      'peak RSS MiB',
      'peak heap MiB',
    ],
    [baseline, target].map((r) => [
      r.label,
      f(r.bytes / 2 ** 20),
      f(r.parseMs),
      f(r.planMs),
      f(r.totalMs),
      f(r.totalMs / baseline.totalMs),
      String(r.actions),
      String(r.waves),
      f(r.rssMiB),
      f(r.heapMiB),
    ]),
  ) + '\n',
);
const ok = target.totalMs < 1000 && target.rssMiB < 300;
process.stdout.write(
  `goal: total < 1000 ms and RSS < 300 MiB for 1,000 hosts / 10,000 VMs: ${ok ? 'MET' : 'NOT MET'}\n`,
);
