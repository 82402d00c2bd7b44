// Storage-aware planning: what pools cost the planner. 1,000 hosts / 10,000 VMs against a copy with 5% of VMs
// moved, created, resized or removed, planned with every VM's disk in a pool (half on an NFS pool all hosts
// mount, half in a file pool each host has), against the hosts' reported domains and pools, so every create is checked
// for space and every move is decided live or cold. Baseline, in the same run: the same sites with the disks
// outside pools (what XSM planned before pools). Medians of 7 runs, with min-max.
// Run: npx tsx bench/plan-storage.ts
import { planChanges } from '../src/site/plan.ts';
import { formatTable } from '../src/site/plan-format.ts';
import type { Site, TemplateSpec } from '../src/site/model.ts';
import type { ObservedState } from '../src/site/observed.ts';
import { changeSite, generateSite } from './generate.ts';

const RUNS = 7;

function pooled(site: Site): Site {
  const tpl = site.templates[0]!;
  const disk = (pool: string, dir: string) => ({
    target: `${dir}/{vm}-xvda.img`,
    vdev: 'xvda',
    format: 'raw' as const,
    access: 'rw' as const,
    pool,
    image: 'deb12.img',
    clone: 'copy' as const,
  });
  const templates: TemplateSpec[] = [
    { ...tpl, name: 'web-nfs', disks: [disk('shared', '/mnt/shared')] },
    { ...tpl, name: 'web-local', disks: [disk('local', '/srv/xen/pool')] },
  ];
  return {
    ...site,
    pools: [
      { name: 'local', type: 'file', path: '/srv/xen/pool' },
      { name: 'shared', type: 'nfs', server: '10.255.0.1', export: '/export', path: '/mnt/shared' },
    ],
    templates,
    vms: site.vms.map((v) => ({ ...v, config: Number(v.name.slice(2)) % 2 ? 'web-local' : 'web-nfs' })),
  };
}

function observed(site: Site): ObservedState {
  const hosts: ObservedState['hosts'] = {};
  const byHost = new Map<string, string[]>();
  for (const v of site.vms) byHost.set(v.host, [...(byHost.get(v.host) ?? []), v.name]);
  for (const h of site.hosts)
    hosts[h.name] = {
      name: h.name,
      heartbeatAt: Date.now(),
      totalMemMiB: h.memoryMiB + 1024,
      freeMemMiB: h.memoryMiB,
      nrCpus: h.cpus,
      domains: site.vms
        .filter((v) => v.host === h.name)
        .map((v) => ({
          name: v.name,
          domid: 1,
          state: 'running' as const,
          memMiB: v.memMiB,
          maxMemMiB: v.memMiB,
          vcpus: v.vcpus,
          maxVcpus: v.vcpus,
          cpuTimeSec: 0,
        })),
      pools: [
        {
          name: 'local',
          type: 'file',
          sizeMiB: 1 << 22,
          freeMiB: 1 << 21,
          images: [
            { name: 'deb12.img', sizeMiB: 2048 },
            ...(byHost.get(h.name) ?? []).map((n) => ({ name: `${n}-xvda.img`, sizeMiB: 2048 })),
          ],
        },
        {
          name: 'shared',
          type: 'nfs',
          sizeMiB: 1 << 26,
          freeMiB: 1 << 25,
          images: [{ name: 'deb12.img', sizeMiB: 2048 }],
        },
      ],
    };
  return { hosts };
}

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, min: s[0]!, max: s.at(-1)! };
};

function time(current: Site, desired: Site, obs: ObservedState | undefined) {
  const ms: number[] = [];
  let plan = planChanges(current, desired, obs);
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    plan = planChanges(current, desired, obs);
    ms.push(performance.now() - t0);
  }
  const cold = plan.actions.filter((a) => a.kind === 'migrate' && a.mode === 'cold').length;
  return { ...stats(ms), actions: plan.actions.length, cold };
}

const base = generateSite(1000, 10000);
const changed = changeSite(base, 0.05);
// The baseline plans against the same agents' reports, without their pools.
const withoutPools = (o: ObservedState): ObservedState => ({
  hosts: Object.fromEntries(Object.entries(o.hosts).map(([k, { pools: _p, ...h }]) => [k, h])),
});
const baseline = time(base, changed, withoutPools(observed(pooled(base))));
const withPools = time(pooled(base), pooled(changed), observed(pooled(base)));
const f = (n: number) => n.toFixed(1);
process.stdout.write(
  formatTable(
    ['planning 1,000 hosts / 10,000 VMs', 'median ms', 'min-max ms', 'actions', 'cold moves'],
    [
      [
        'baseline: disks outside pools',
        f(baseline.median),
        `${f(baseline.min)}-${f(baseline.max)}`,
        String(baseline.actions),
        String(baseline.cold),
      ],
      [
        'XSM: disks in pools, space checked',
        f(withPools.median),
        `${f(withPools.min)}-${f(withPools.max)}`,
        String(withPools.actions),
        String(withPools.cold),
      ],
    ],
  ) + '\n',
);
const ratio = withPools.median / baseline.median;
process.stdout.write(
  `pools cost x${ratio.toFixed(2)} planning time (goal: under x1.5): ${ratio < 1.5 ? 'met' : 'NOT met'}\n`,
);
