// Issue 3 benchmark: apply a whole site end to end (submit -> plan -> flows -> per-host queues -> create
// workflows on simulated Xen hosts -> converged), and report actions per second and job latency
// (enqueue to finish, p50/p99). Baseline, in the same run: a site 10x smaller. Goal: >= 1,000 actions/s
// for 10,000 VMs on 1,000 hosts on a 2-core machine.
//
// Run: npx tsx bench/apply.ts [baselineHosts baselineVms] [hosts vms]   (default 100 1000 1000 10000)
// Agents run in worker processes (XSM_BENCH_PROCS, default 2), each hosting a share of the simulated
// hosts' agents, as on a real site every Dom0 runs its own agent; the simulated hosts use zero-delay
// timing so what is measured is XSM's own overhead: Redis, BullMQ, journals, planning.
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { MemorySimStore, SimulatedXenHost, provisionSimHost } from '../src/drivers/hypervisor/simulated.ts';
import { XsmRuntime } from '../src/jobs/runtime.ts';
import { convergedVersion } from '../src/jobs/apply.ts';
import { submitSite } from '../src/jobs/submit.ts';
import { hostQueueName } from '../src/jobs/queues.ts';
import { closeWhenReady, deleteKeysByPrefix, redisConfigFromEnv } from '../src/lib/redis.ts';
import { silentLogger } from '../src/lib/log.ts';
import { serializeSite } from '../src/site/serialize.ts';
import { startControlWorker } from '../workers/control-lib.ts';
import { startHostAgent } from '../workers/host-agent-lib.ts';
import { generateSite } from './generate.ts';

const self = new URL(import.meta.url).pathname;

interface ChildInit {
  prefix: string;
  hosts: string[];
}

/** Child mode: run the agents of the given hosts until told to stop. */
async function child(init: ChildInit): Promise<void> {
  const rt = new XsmRuntime({ ...redisConfigFromEnv(), prefix: init.prefix });
  const store = new MemorySimStore();
  const agents: ReturnType<typeof startHostAgent>[] = [];
  for (const name of init.hosts) {
    await provisionSimHost(store, { name, totalMemMiB: 65536 + 1024, dom0MemMiB: 1024, nrCpus: 32 });
    const hv = new SimulatedXenHost(store, name, { createMs: 0, shutdownMs: 0, migrateMsPerGiB: 0 });
    agents.push(startHostAgent({ rt, hv, log: silentLogger, heartbeatMs: 30000, concurrency: 8 }));
  }
  // Agents are long-running daemons: let them finish connecting (and loading BullMQ's scripts)
  // before the clock starts, as they would have on a running site.
  await Promise.all(agents.map((a) => a.worker.waitUntilReady()));
  process.send!({ ready: true });
  process.on('message', async (m: { stop?: boolean }) => {
    if (!m.stop) return;
    await Promise.all(agents.map((a) => a.close()));
    await rt.close();
    process.exit(0);
  });
}

interface Result {
  label: string;
  hosts: number;
  vms: number;
  seconds: number;
  actionsPerSec: number;
  p50: number;
  p99: number;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function run(label: string, hostCount: number, vmCount: number, procs: number): Promise<Result> {
  const prefix = `xsm-bench-${randomBytes(4).toString('hex')}`;
  const rt = new XsmRuntime({ ...redisConfigFromEnv(), prefix });
  const site = generateSite(hostCount, vmCount, 7);
  const xml = serializeSite(site);
  const names = site.hosts.map((h) => h.name);
  const children: ChildProcess[] = [];
  for (let p = 0; p < procs; p++) {
    const share = names.filter((_, i) => i % procs === p);
    const c = fork(self, ['--child'], {
      execArgv: [
        '--import',
        'tsx',
        ...(process.env.XSM_BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.XSM_BENCH_PROF}`] : []),
      ],
      stdio: 'inherit',
    });
    children.push(c);
    await new Promise<void>((resolve, reject) => {
      c.once('message', () => resolve());
      c.once('exit', (code) => reject(new Error(`agent process exited with ${code}`)));
      c.send({ prefix, hosts: share } satisfies ChildInit);
    });
  }
  const control = startControlWorker(rt, silentLogger);
  try {
    const started = Date.now();
    const { version } = await submitSite(rt, {
      xml,
      file: `${label}.xml`,
      base: 0,
      author: 'bench',
      reason: label,
      consent: 'none',
      apply: true,
    });
    while ((await convergedVersion(rt)) < version) {
      const failed = await rt.control().getJobCounts('failed');
      if (failed.failed) throw new Error(`${failed.failed} control jobs failed`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const seconds = (Date.now() - started) / 1000;
    // Latency of every action job: from its creation (enqueue) to its finish.
    const latencies: number[] = [];
    for (const h of names) {
      const jobs = await rt.hostQueue(h).getJobs(['completed'], 0, -1);
      for (const j of jobs) if (j.finishedOn) latencies.push(j.finishedOn - j.timestamp);
    }
    if (latencies.length !== vmCount)
      throw new Error(`expected ${vmCount} completed actions, found ${latencies.length}`);
    latencies.sort((a, b) => a - b);
    return {
      label,
      hosts: hostCount,
      vms: vmCount,
      seconds,
      actionsPerSec: vmCount / seconds,
      p50: pct(latencies, 50),
      p99: pct(latencies, 99),
    };
  } finally {
    await closeWhenReady(control);
    for (const c of children) c.send({ stop: true });
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
    for (const h of names)
      await rt
        .hostQueue(h)
        .obliterate({ force: true })
        .catch(() => {});
    await rt.close();
    await deleteKeysByPrefix(redisConfigFromEnv(), prefix);
  }
}

async function main(): Promise<void> {
  const [bh = '100', bv = '1000', h = '1000', v = '10000'] = process.argv.slice(2);
  const procs = Number(process.env.XSM_BENCH_PROCS ?? 2);
  const base = await run('baseline', Number(bh), Number(bv), procs);
  const big = await run('measured', Number(h), Number(v), procs);
  const row = (r: Result) =>
    `${r.label.padEnd(9)} ${String(r.hosts).padStart(6)} ${String(r.vms).padStart(7)} ${r.seconds.toFixed(2).padStart(8)} ${r.actionsPerSec.toFixed(0).padStart(10)} ${String(r.p50).padStart(8)} ${String(r.p99).padStart(8)}`;
  console.log(`apply benchmark: ${procs} agent processes, simulated hosts with zero-delay xl\n`);
  console.log('run        hosts     VMs  seconds  actions/s  p50(ms)  p99(ms)');
  console.log(row(base));
  console.log(row(big));
  console.log(
    `\nratio measured/baseline: size x${(big.vms / base.vms).toFixed(0)}, time x${(big.seconds / base.seconds).toFixed(2)}, throughput x${(big.actionsPerSec / base.actionsPerSec).toFixed(2)}`,
  );
  console.log(
    `goal >= 1000 actions/s at ${big.hosts} hosts / ${big.vms} VMs: ${big.actionsPerSec >= 1000 ? 'MET' : 'NOT MET'}`,
  );
}

if (process.argv.includes('--child')) {
  process.once('message', (init: ChildInit) => void child(init));
} else {
  await main();
}
