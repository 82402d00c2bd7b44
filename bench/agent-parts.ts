// Issue 20, goal 1: what a host agent's own parts cost per call, in CPU µs of this process, so a change to one
// of them is measured apart from the apply benchmark's noise (bench/apply.ts runs three processes beside
// Redis on a shared machine; a part's change of a few µs is lost in its run-to-run spread). Each figure is
// the median of XSM_BENCH_RUNS (default 5) timed loops, with min-max, after a warm-up loop.
//
// The parts: the simulator's `xl list` of a host with 10 domains and its `find`; the step runner over
// create-vm's six steps (no-op steps, a journal that serialises as the Redis one does, the step-duration
// histogram); reading back a generated VM's xl config (the simulator's create); and one round trip of each
// command a create adds to BullMQ's own on the agent's side: the fencing epoch (HGET), check-plan's domain
// index (SMEMBERS), the journal's fenced write (EVALSHA), against the Redis of XSM_REDIS_URL.
//
// Run: npx tsx bench/agent-parts.ts
import { Redis } from 'ioredis';
import { buildDomainConfig, readDomainConfig } from '../src/drivers/hypervisor/domain-config.ts';
import { MemorySimStore, SimulatedXenHost, provisionSimHost } from '../src/drivers/hypervisor/simulated.ts';
import { createLogger } from '../src/lib/log.ts';
import { coalesceWrites, redisConfigFromEnv } from '../src/lib/redis.ts';
import { runSteps, type JobProgress, type Step, type StepJournal } from '../src/lib/steps.ts';
import { indexSite } from '../src/site/model.ts';
import { EventMetrics } from '../src/state/event-metrics-store.ts';
import { spread, table } from './figures.ts';
import { generateSite } from './generate.ts';

const RUNS = Number(process.env.XSM_BENCH_RUNS ?? 5);

/** CPU µs per call of `op`, RUNS times over `calls` calls, after one untimed loop. */
async function perCall(op: () => unknown, calls: number): Promise<number[]> {
  for (let i = 0; i < calls; i++) await op();
  const out: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const c0 = process.cpuUsage();
    for (let i = 0; i < calls; i++) await op();
    const c = process.cpuUsage(c0);
    out.push((c.user + c.system) / calls);
  }
  return out;
}

async function simulatedHost() {
  const store = new MemorySimStore();
  await provisionSimHost(store, { name: 'xen0001', totalMemMiB: 65536 + 1024, dom0MemMiB: 1024, nrCpus: 32 });
  const hv = new SimulatedXenHost(store, 'xen0001', { createMs: 0, shutdownMs: 0, migrateMsPerGiB: 0 });
  const site = generateSite(10, 100, 7);
  const idx = indexSite(site);
  const vms = site.vms.filter((v) => v.host === site.hosts[0]!.name).slice(0, 10);
  const configs = [];
  for (const vm of vms) {
    const cfg = await buildDomainConfig(hv, vm, idx.templates.get(vm.config)!);
    await hv.create(cfg);
    configs.push(cfg.text);
  }
  return { hv, vm: vms[5]!.name, config: configs[0]! };
}

/** create-vm's steps as the runner sees them: two pure, one pure for this job, one written, two pure. */
function stepRunner(): () => Promise<void> {
  const log = createLogger({ pid: process.pid }, 'warn', () => {});
  // Histograms added up in the process; this pipeline is never flushed to Redis.
  const offline = { pipeline: () => ({ hincrby() {}, hincrbyfloat() {}, exec: async () => [] }) };
  const events = new EventMetrics(offline as unknown as Redis, 'bench');
  const noop = async () => {};
  const steps: Step<object>[] = [
    { name: 'check-plan', pure: true, run: noop },
    { name: 'render-config', pure: true, run: noop },
    { name: 'provision-disks', pure: () => true, run: noop },
    { name: 'xl-create', run: noop },
    { name: 'wait-running', pure: true, run: noop },
    { name: 'verify', pure: true, run: noop },
  ];
  let written = '';
  const journal = (): StepJournal => ({
    load: () => ({ done: [] }),
    record: async (state, progress) => {
      written = JSON.stringify(Object.assign({}, progress, { journal: state }) satisfies JobProgress);
    },
  });
  let n = 0;
  return async () => {
    const jobLog = log.child({ host: 'xen0001', job: `v1-create-vm${n++}`, vm: 'vm1' });
    await runSteps('create-vm', steps, {}, journal(), jobLog, {
      onStepDone: (workflow, step, s) => events.observe('xsm_step_duration_seconds', { workflow, step }, s),
    });
    if (!written) throw new Error('the journal was never written');
  };
}

async function main(): Promise<void> {
  const { hv, vm, config } = await simulatedHost();
  const redis = coalesceWrites(new Redis(redisConfigFromEnv().url));
  const prefix = `xsm-bench-parts-${process.pid}`;
  // The journal's script (src/lib/steps.ts), loaded first and sent by its SHA1 as src/lib/lua-script.ts does;
  // spelled out here so this file also runs on commits from before that file, for before/after figures.
  const write = (await redis.script(
    'LOAD',
    `if redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('HSET', KEYS[1], 'progress', ARGV[1])
  return 0
end
return -2`,
  )) as string;
  const progress = JSON.stringify({
    workflow: 'create-vm',
    step: 'xl-create',
    index: 4,
    total: 6,
    journal: { done: ['check-plan', 'render-config', 'provision-disks'], current: 'xl-create' },
  });
  await redis.set(`${prefix}:job:lock`, 'token');
  try {
    const parts: [string, () => unknown, number][] = [
      ['simulator: xl list, 10 domains', () => hv.list(), 20_000],
      ['simulator: find one domain', () => hv.find(vm), 20_000],
      ["step runner: create-vm's 6 steps, journal, histograms", stepRunner(), 20_000],
      ["reading back a VM's xl config", () => readDomainConfig(config), 20_000],
      ['round trip: fencing epoch (HGET)', () => redis.hget(`${prefix}:epochs`, 'xen0001'), 5_000],
      ["round trip: check-plan's domain index (SMEMBERS)", () => redis.smembers(`${prefix}:domain:vm1`), 5_000],
      [
        "round trip: the journal's fenced write (EVALSHA)",
        () => redis.evalsha(write, 2, `${prefix}:job`, `${prefix}:job:lock`, progress, 'token'),
        5_000,
      ],
    ];
    const rows: string[][] = [];
    for (const [name, op, calls] of parts) rows.push([name, spread(await perCall(op, calls), 1)]);
    console.log(`An agent's parts, CPU µs of this process per call, median (min–max) of ${RUNS} loops:`);
    console.log(table(['part', 'CPU µs per call'], rows));
  } finally {
    await redis.del(`${prefix}:job`, `${prefix}:job:lock`);
    redis.disconnect();
  }
}

await main();
