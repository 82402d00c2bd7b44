// Issue 19 benchmark: recovery from a host's death to all its restartable VMs running elsewhere, and the
// false-fence rate under a flapping network.
//
// Recovery has two parts, measured apart and added per run:
//  - detection, from the death to the failover job: XSM's real health check (checkHosts) on the stores' twins,
//    on a virtual clock: heartbeats every heartbeat period, the check every check period, the death at a
//    random moment between two heartbeats and the check schedule at a random phase. Waiting a minute of
//    wall-clock time per run would only measure the timers.
//  - execution, from the failover job to the last VM running elsewhere: the real failover job (fence through
//    the simulator's power control, placement, the version it writes, its apply) on the simulator and Redis.
// The baseline is the policy XSM shipped before (suspect 30 s + fence 30 s), in the same run.
//
// False fences: 10 hosts, all alive; 3 of them lose their heartbeats and Ganglia reports in bursts (each
// outage exponential with mean 5 s, one starting on average every 2 min). A host fenced while alive is a
// false fence; counted over 24 virtual hours per run.
//
// Run: npx tsx bench/failover-recovery.ts [runs]   (needs Redis on XSM_REDIS_URL or 127.0.0.1:6379)

import { checkHosts, DEFAULT_FAILOVER_POLICY, type FailoverPolicy } from '../src/services/health-check.ts';
import { memoryRuntime } from '../src/runtime/service-runtime.ts';
import { siteXml } from '../test/integration/fixtures.ts';
import { startTestSite } from '../test/integration/harness.ts';
import { spread, table } from './figures.ts';
import { rng } from './generate.ts';

interface Setting {
  name: string;
  policy: FailoverPolicy;
  checkS: number;
  heartbeatS: number;
}

const SETTINGS: Setting[] = [
  {
    name: 'baseline: former defaults (check 10 s, suspect 30 s, fence 30 s)',
    policy: { suspectAfterMs: 30_000, fenceAfterMs: 30_000, maxDeadFraction: 0.5 },
    checkS: 10,
    heartbeatS: 5,
  },
  {
    name: `XSM defaults (check 5 s, suspect ${DEFAULT_FAILOVER_POLICY.suspectAfterMs / 1000} s, fence ${DEFAULT_FAILOVER_POLICY.fenceAfterMs / 1000} s)`,
    policy: DEFAULT_FAILOVER_POLICY,
    checkS: 5,
    heartbeatS: 5,
  },
  {
    name: 'tuned (heartbeat 1 s, check 1 s, suspect 5 s, fence 5 s)',
    policy: { suspectAfterMs: 5_000, fenceAfterMs: 5_000, maxDeadFraction: 0.5 },
    checkS: 1,
    heartbeatS: 1,
  },
];

const HOSTS = Array.from({ length: 4 }, (_, i) => ({ name: `h${i + 1}`, memMiB: 4096 }));

/** A memory runtime with a site of `hosts` and each host's report; `beat` sets a host's heartbeat. */
async function virtualSite(hostNames: string[]) {
  const rt = memoryRuntime();
  const hosts = hostNames.map((name) => ({ name, memMiB: 4096 }));
  await rt.sites.submit(siteXml(hosts, [{ name: 'vm0', host: hostNames[0]!, mem: 256 }]), {
    base: 0,
    author: 'bench',
    reason: 'bench',
  });
  const beat = (name: string, at: number) =>
    rt.observed.report({ name, heartbeatAt: at, totalMemMiB: 4608, freeMemMiB: 4096, nrCpus: 8, domains: [] });
  return { rt, beat };
}

/** Milliseconds from the death of h1 to the check that enqueues its failover job, on a virtual clock. */
async function detection(s: Setting, seed: number): Promise<number> {
  const r = rng(seed);
  const names = HOSTS.map((h) => h.name);
  const { rt, beat } = await virtualSite(names);
  const hb = s.heartbeatS * 1000;
  const check = s.checkS * 1000;
  const t0 = 1_000_000;
  const death = t0 + 60_000 + r(hb); // between two heartbeats
  const phase = r(check);
  for (let now = t0 + phase; now < death + 600_000; now += check) {
    // Every heartbeat up to now: the survivors' and, until its death, h1's.
    for (const n of names) {
      const last = Math.floor((n === 'h1' ? Math.min(now, death) : now) / hb) * hb;
      await beat(n, last);
    }
    const changes = await checkHosts(rt, s.policy, undefined, now);
    if (changes.some((c) => c.host === 'h1' && c.to === 'fencing')) return now - death;
  }
  throw new Error('h1 was never fenced');
}

/** Milliseconds from the failover job to the last of h1's VMs running elsewhere, for real on the simulator. */
async function execution(): Promise<number> {
  const site = await startTestSite(HOSTS);
  try {
    const vms = Array.from({ length: 6 }, (_, i) => ({ name: `vm${i}`, host: 'h1', mem: 512 }));
    const others = [{ name: 'x', host: 'h2', mem: 512 }];
    const v1 = await site.submitAndApply(siteXml(HOSTS, [...vms, ...others]));
    await site.waitConverged(v1);
    await site.agents.get('h1')!.close();
    site.agents.delete('h1');
    const incident = (await site.rt.observed.host('h1'))!.heartbeatAt;
    const start = Date.now();
    await site.rt.failover.setHealth('h1', { state: 'fencing', incident, since: start });
    await site.rt.control().add('failover', { host: 'h1', incident }, { jobId: `failover-h1-${incident}` });
    for (;;) {
      const where = await site.where();
      if (vms.every((v) => where[v.name] && where[v.name] !== 'h1' && !where[v.name]!.includes(','))) break;
      if (Date.now() - start > 60_000) throw new Error('the VMs were not restarted within 60 s');
      await new Promise((res) => setTimeout(res, 20));
    }
    return Date.now() - start;
  } finally {
    await site.close();
  }
}

/** Fences of alive hosts in 24 virtual hours of a flapping network. */
async function falseFences(s: Setting, seed: number): Promise<{ fences: number; outages: number }> {
  const r = rng(seed);
  const names = Array.from({ length: 10 }, (_, i) => `f${i}`);
  const flapping = new Set(names.slice(0, 3));
  const { rt, beat } = await virtualSite(names);
  const hb = s.heartbeatS * 1000;
  const check = s.checkS * 1000;
  const day = 24 * 3600 * 1000;
  // Outages per flapping host: [from, to), exponential lengths (mean 5 s), about one every 2 min.
  const expo = (mean: number) => -Math.log(1 - (r(1_000_000) + 0.5) / 1_000_001) * mean;
  const outages = new Map<string, [number, number][]>();
  let count = 0;
  for (const n of flapping) {
    const list: [number, number][] = [];
    for (let t = expo(120_000); t < day; t += expo(120_000)) {
      const len = expo(5_000);
      list.push([t, t + len]);
      t += len;
      count++;
    }
    outages.set(n, list);
  }
  // Per host: the last heartbeat that got through, and the next one to consider.
  const lastBeat = new Map(names.map((n) => [n, 0]));
  const nextBeat = new Map(names.map((n) => [n, hb]));
  const cursor = new Map(names.map((n) => [n, 0]));
  const lost = (n: string, at: number) => {
    const list = outages.get(n) ?? [];
    let k = cursor.get(n)!;
    while (k < list.length && list[k]![1] <= at) k++;
    cursor.set(n, k);
    return k < list.length && list[k]![0] <= at;
  };
  let fences = 0;
  for (let now = r(check); now < day; now += check) {
    for (const n of names) {
      for (let b = nextBeat.get(n)!; b <= now; b += hb) {
        if (!lost(n, b)) lastBeat.set(n, b);
        nextBeat.set(n, b + hb);
      }
      await beat(n, lastBeat.get(n)!);
    }
    for (const c of await checkHosts(rt, s.policy, undefined, now)) {
      if (c.to !== 'fencing') continue;
      fences++;
      // The host is alive: the failover job's confirm-down sees its next heartbeat and stands down.
      await rt.failover.clearHealth(c.host);
    }
  }
  return { fences, outages: count };
}

const runs = Number(process.argv[2] ?? 5);
const rows: string[][] = [];
const flapRows: string[][] = [];
const exec: number[] = [];
for (let i = 0; i < runs; i++) exec.push(await execution());
for (const s of SETTINGS) {
  const det: number[] = [];
  const total: number[] = [];
  const fences: number[] = [];
  let outages = 0;
  for (let i = 0; i < runs; i++) {
    det.push((await detection(s, 1000 + i)) / 1000);
    total.push(det[i]! + exec[i]! / 1000);
    const f = await falseFences(s, 2000 + i);
    fences.push(f.fences);
    outages += f.outages;
  }
  rows.push([
    s.name,
    spread(det, 1),
    spread(
      exec.map((e) => e / 1000),
      2,
    ),
    spread(total, 1),
  ]);
  flapRows.push([s.name, spread(fences, 0), String(Math.round(outages / runs))]);
}
process.stdout.write(
  `Recovery of a dead host with 6 VMs (4 hosts), ${runs} runs; medians (min–max), seconds\n\n` +
    table(['setting', 'detection', 'fence + restart', 'total'], rows) +
    `\n\nFalse fences in 24 h: 10 hosts, 3 flapping (outages mean 5 s, one every ~2 min each), ${runs} runs\n\n` +
    table(['setting', 'false fences / day', 'outages / day'], flapRows) +
    '\n',
);
