// Issue 3 benchmark: apply a whole site end to end (submit -> plan -> flows -> per-host queues -> create
// workflows on simulated Xen hosts -> converged), and report actions per second and job latency
// (enqueue to finish, p50/p99). Baseline, in the same run: a site 10x smaller. Goal: >= 1,000 actions/s
// for 10,000 VMs on 1,000 hosts on a 2-core machine.
// Issue 12: everything runs on BullMQ 6 and, beside it in the same run and on the same Redis, on the
// BullMQ 5 XSM ran on before (bench/bullmq-major.mjs): first XSM's queue layout with no-op processors
// (bench/queue-layout.ts), then XSM's own apply. Each figure is the median of XSM_BENCH_RUNS (default 5)
// runs with min-max; the two majors alternate so drift on a shared machine hits both.
//
// Issue 20: the raw baseline, in the same run on the same Redis: BullMQ 6 alone, one FlowProducer parent on
// the control queue with one child per action over the same per-host queues (hosts x VMs of the measured
// apply), no-op processors, XSM's action job options. XSM's apply is reported as a fraction of it (goal
// >= 0.8), with Redis commands per action by command (INFO commandstats deltas) for both. The benchmark
// starts a Redis of its own (redis-server on a free loopback port, no persistence, like the shared one's
// defaults) so other clients' commands never count; XSM_BENCH_SHARED_REDIS=1 uses XSM_REDIS_URL instead.
// XSM_BENCH_MAJORS=6 leaves out the BullMQ 5 comparison.
//
// Run: npx tsx bench/apply.ts [baselineHosts baselineVms] [hosts vms]   (default 100 1000 1000 10000)
// Agents run in worker processes (XSM_BENCH_PROCS, default 2), each hosting a share of the simulated
// hosts' agents, as on a real site every Dom0 runs its own agent; the simulated hosts use zero-delay
// timing so what is measured is XSM's own overhead: Redis, BullMQ, journals, planning.
import { flushTracing, startTracing } from '../src/lib/tracing.ts';
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import * as bullmq5 from 'bullmq-v5';
import * as bullmq6 from 'bullmq';
import { AgentOutageTally, CountingSimStore } from './agent-outages.ts';
import { median, ratio, spread, table } from './figures.ts';
import { privateRedis } from './private-redis.ts';
import { profileWindow } from './window-profile.ts';
import { runBurst, type LayoutResult, type LayoutShape, type QueueKit } from './queue-layout.ts';
import { SimulatedXenHost, provisionSimHost } from '../src/drivers/hypervisor/simulated.ts';
import { XsmRuntime } from '../src/runtime/runtime.ts';
import { awaitConverged } from './await-converged.ts';
import { submitSite } from '../src/services/site-service.ts';
import { closeWhenReady, deleteKeysByPrefix, redisConfigFromEnv, workerConnectionOptions } from '../src/lib/redis.ts';
import { silentLogger } from '../src/lib/log.ts';
import { serializeSite } from '../src/site/serialize.ts';
import { startControlWorker } from '../workers/control-lib.ts';
import { hostWorkerSpec, startHostAgent } from '../workers/host-agent-lib.ts';
import { generateSite } from './generate.ts';
import { planChanges } from '../src/site/plan.ts';
import { indexSite } from '../src/site/model.ts';
import type { ActionJobData } from '../src/runtime/queues.ts';
import { Redis } from 'ioredis';
import { WorkerSupervisor } from '../src/runtime/worker-supervisor.ts';
import type { Logger } from '../src/lib/log.ts';

const self = new URL(import.meta.url).pathname;

interface ChildInit {
  prefix: string;
  hosts: string[];
  /** One connection for every agent's non-blocking worker commands (bench/scale-run.ts: 10,000 hosts). */
  shareConnection?: boolean;
  /** Heartbeat period of each agent (default 30 s). */
  heartbeatMs?: number;
}

/**
 * XSM_BENCH_AGENT=noop: each host's worker as the agent builds it (supervised, takeover-safe, the agent's
 * options and job metrics) but completing every job at once, without the fence, the workflow, the journal,
 * the simulator or the observed report: what is left of XSM's CPU per action is the control process's and
 * the worker machinery's. A measurement of where the cost is, not an apply (no VM is made).
 */
const NOOP_AGENTS = process.env.XSM_BENCH_AGENT === 'noop';

function noopAgent(rt: XsmRuntime, host: string, log: Logger): ReturnType<typeof startHostAgent> {
  const supervisor = new WorkerSupervisor(hostWorkerSpec({ rt, log, concurrency: 8 }, host, async () => 'noop'));
  return {
    get worker() {
      return supervisor.worker;
    },
    supervisor,
    close: () => supervisor.close(),
  };
}

/** Child mode: run the agents of the given hosts until told to stop. */
async function child(init: ChildInit): Promise<void> {
  // The agents' warnings and errors (outages, workers replaced or abandoned) are counted, not printed.
  const tally = new AgentOutageTally({ pid: process.pid });
  const rt = new XsmRuntime({ ...redisConfigFromEnv(), prefix: init.prefix }, tally.log);
  const store = new CountingSimStore();
  const agents: ReturnType<typeof startHostAgent>[] = [];
  const shared = init.shareConnection ? new Redis(redisConfigFromEnv().url, { maxRetriesPerRequest: null }) : undefined;
  for (const name of init.hosts) {
    await provisionSimHost(store, { name, totalMemMiB: 65536 + 1024, dom0MemMiB: 1024, nrCpus: 32 });
    const hv = new SimulatedXenHost(store, name, { createMs: 0, shutdownMs: 0, migrateMsPerGiB: 0 });
    agents.push(
      NOOP_AGENTS
        ? noopAgent(rt, name, tally.log)
        : startHostAgent({
            rt,
            hv,
            log: tally.log,
            heartbeatMs: init.heartbeatMs ?? 30000,
            concurrency: 8,
            ...(shared ? { workerConnection: shared } : {}),
          }),
    );
  }
  // Agents are long-running daemons: let them finish connecting (and loading BullMQ's scripts)
  // before the clock starts, as they would have on a running site.
  await Promise.all(agents.map((a) => a.worker.waitUntilReady()));
  const profiled = process.env.XSM_BENCH_PROF ? await profileWindow(process.env.XSM_BENCH_PROF, 'agents') : undefined;
  process.send!({ ready: true });
  const cpu0 = process.cpuUsage();
  const supervisors = agents.map((a) => a.supervisor);
  const report = () =>
    process.send!({ outages: tally.snapshot(supervisors, rt.health, shared), hostChanges: store.changes });
  const reporting = setInterval(report, 5000);
  process.on('message', async (m: { stop?: boolean; report?: boolean; cpu?: boolean }) => {
    if (m.report) report();
    // The measured window's edges (submit, converged): the CPU from ready to stop also holds the idle
    // agents' polling while the site is parsed and planned and while the benchmark reads latencies.
    if (m.cpu) {
      const cpu = process.cpuUsage(cpu0);
      process.send!({ cpuAtMs: (cpu.user + cpu.system) / 1000 });
    }
    if (!m.stop) return;
    clearInterval(reporting);
    report();
    await profiled?.();
    await Promise.all(agents.map((a) => a.close()));
    shared?.disconnect();
    await rt.close();
    await flushTracing();
    process.exit(0);
  });
}

interface Result {
  label: string;
  hosts: number;
  vms: number;
  seconds: number;
  /** Of `seconds`, the submit: parse, validate, plan, hash and store the version (before any job runs). */
  submitSeconds: number;
  actionsPerSec: number;
  p50: number;
  p99: number;
  /** CPU time of the control process and the agent processes per action, from submit to converged. */
  cpuMsPerAction: number;
  /** The same, the control process alone (parse, plan, store, enqueue, wave bookkeeping). */
  controlCpuMsPerAction: number;
  /** The same, the agent processes alone (every host's jobs). */
  agentsCpuMsPerAction: number;
  /** Redis commands by command name during the run (from enqueue to converged), when counted. */
  commands?: Record<string, number>;
}

/** Calls per command since the server started (INFO commandstats). */
async function commandStats(): Promise<Record<string, number>> {
  const r = new Redis(redisConfigFromEnv().url, { maxRetriesPerRequest: 1 });
  try {
    const out: Record<string, number> = {};
    for (const m of (await r.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
      out[m[1]!] = Number(m[2]);
    return out;
  } finally {
    r.disconnect();
  }
}

function delta(after: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
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
      // The same loaders as this process (tsx, and bullmq-major.mjs when running on BullMQ 5).
      execArgv: process.execArgv,
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
  /** The agents' CPU ms so far, each process asked now. */
  const agentsCpuNow = () =>
    Promise.all(
      children.map(
        (c) =>
          new Promise<number>((resolve) => {
            const on = (m: { cpuAtMs?: number }) => {
              if (m.cpuAtMs === undefined) return;
              c.off('message', on);
              resolve(m.cpuAtMs);
            };
            c.on('message', on);
            c.send({ cpu: true });
          }),
      ),
    ).then((ms) => ms.reduce((a, b) => a + b, 0));
  let controlCpu = process.cpuUsage();
  let stopped = false;
  const stopChildren = () => {
    if (!stopped) for (const c of children) c.send({ stop: true });
    stopped = true;
  };
  let profiled: (() => Promise<string>) | undefined;
  try {
    const stats0 = await commandStats();
    if (process.env.XSM_BENCH_PROF) profiled = await profileWindow(process.env.XSM_BENCH_PROF, `control-${label}`);
    const agentsCpu0 = await agentsCpuNow();
    const started = Date.now();
    controlCpu = process.cpuUsage();
    const { version } = await submitSite(rt, {
      xml,
      file: `${label}.xml`,
      base: 0,
      author: 'bench',
      reason: label,
      consent: 'none',
      apply: true,
    });
    const submitSeconds = (Date.now() - started) / 1000;
    await awaitConverged(rt, version);
    const seconds = (Date.now() - started) / 1000;
    // Up to converged, as the agents' (reading every job's latency below is the benchmark's own work).
    const own = process.cpuUsage(controlCpu);
    const agentsCpuMs = (await agentsCpuNow()) - agentsCpu0;
    await profiled?.();
    profiled = undefined;
    const commands = delta(await commandStats(), stats0);
    // Latency of every action job: from its creation (enqueue) to its finish.
    const latencies: number[] = [];
    for (const h of names) {
      const jobs = await rt.hostQueue(h).getJobs(['completed'], 0, -1);
      for (const j of jobs) if (j.finishedOn) latencies.push(j.finishedOn - j.timestamp);
    }
    if (latencies.length !== vmCount)
      throw new Error(`expected ${vmCount} completed actions, found ${latencies.length}`);
    latencies.sort((a, b) => a - b);
    stopChildren();
    const controlCpuMs = (own.user + own.system) / 1000;
    return {
      label,
      hosts: hostCount,
      vms: vmCount,
      seconds,
      submitSeconds,
      actionsPerSec: vmCount / seconds,
      p50: pct(latencies, 50),
      p99: pct(latencies, 99),
      cpuMsPerAction: (controlCpuMs + agentsCpuMs) / vmCount,
      controlCpuMsPerAction: controlCpuMs / vmCount,
      agentsCpuMsPerAction: agentsCpuMs / vmCount,
      commands,
    };
  } finally {
    await profiled?.();
    await closeWhenReady(control);
    stopChildren();
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

type Major = 5 | 6;
const MAJORS: Major[] = process.env.XSM_BENCH_MAJORS === '6' ? [6] : [5, 6];
const require = createRequire(import.meta.url);
const versions: Record<Major, string> = {
  5: `BullMQ ${require('bullmq-v5/package.json').version} (ioredis ${require('bullmq-v5/node_modules/ioredis/package.json').version})`,
  6: `BullMQ ${require('bullmq/package.json').version} (ioredis ${require('ioredis/package.json').version})`,
};

/** Alternates the two majors' order each round, so a drifting machine load hits both alike. */
function schedule(runs: number): Major[] {
  const out: Major[] = [];
  for (let i = 0; i < runs; i++) out.push(...(i % 2 ? [...MAJORS].reverse() : MAJORS));
  return out;
}

function kit(major: Major, prefix: string): QueueKit {
  const lib = (major === 5 ? bullmq5 : bullmq6) as unknown as Pick<QueueKit, 'Worker' | 'FlowProducer'>;
  const connection = workerConnectionOptions(redisConfigFromEnv());
  return {
    label: `BullMQ ${major}`,
    Worker: lib.Worker,
    FlowProducer: lib.FlowProducer,
    options: { connection, prefix },
  };
}

async function layoutRun(major: Major, shape: LayoutShape, flows: number): Promise<RawRun> {
  const prefix = `xsm-bench-${randomBytes(4).toString('hex')}`;
  try {
    let before: Record<string, number> = {};
    const r = await runBurst(kit(major, prefix), shape, flows, async () => {
      before = await commandStats();
    });
    return { ...r, commands: delta(await commandStats(), before) };
  } finally {
    await deleteKeysByPrefix(redisConfigFromEnv(), prefix);
  }
}

/** One XSM apply in a fresh process on the given BullMQ major; the process sends its Result back. */
function applyRun(major: Major, label: string, hosts: number, vms: number, procs: number): Promise<Result> {
  const c = fork(self, ['--apply-run', label, String(hosts), String(vms), String(procs)], {
    execArgv: [...process.execArgv, '--import', new URL('./bullmq-major.mjs', import.meta.url).href],
    env: { ...process.env, XSM_BENCH_BULLMQ: String(major) },
    stdio: 'inherit',
  });
  return new Promise((resolve, reject) => {
    c.once('message', (r: Result) => resolve(r));
    c.once('exit', (code) => reject(new Error(`BullMQ ${major} apply run exited with ${code}`)));
  });
}

const USAGE = `usage: npx tsx bench/apply.ts [baselineHosts baselineVms] [hosts vms]   (default 100 1000 1000 10000)
environment: XSM_BENCH_RUNS (default 5), XSM_BENCH_PROCS agent processes (default 2), XSM_BENCH_MAJORS=6
(BullMQ 6 only), XSM_BENCH_SHARED_REDIS=1 (XSM_REDIS_URL's Redis instead of a private one), XSM_BENCH_PROF=DIR
(CPU profiles of the agent and control processes over each measured window, written to DIR),
XSM_BENCH_AGENT=noop (agents' workers complete each job at once: the control process's share of the cost)`;

/** The four sizes from the command line; exits with the usage on --help or anything not a positive integer. */
function sizesFromArgs(args: string[]): [string, string, string, string] {
  if (args.includes('--help') || args.includes('-h')) {
    console.log(USAGE);
    process.exit(0);
  }
  const bad = args.find((a) => !/^[1-9]\d*$/.test(a));
  if (bad !== undefined || (args.length !== 0 && args.length !== 2 && args.length !== 4)) {
    console.error(`${bad === undefined ? 'give 0, 2 or 4 sizes' : `not a positive count: ${bad}`}\n${USAGE}`);
    process.exit(2);
  }
  const [bh = '100', bv = '1000', h = '1000', v = '10000'] = args;
  return [bh, bv, h, v];
}

async function main([bh, bv, h, v]: [string, string, string, string]): Promise<void> {
  const procs = Number(process.env.XSM_BENCH_PROCS ?? 2);
  const runs = Number(process.env.XSM_BENCH_RUNS ?? 5);
  const engines = MAJORS.length > 1 ? `${versions[6]} beside ${versions[5]}` : versions[6];
  console.log(`apply benchmark: ${engines}, same Redis, ${runs} runs of each figure;`);
  console.log('figures are median (min–max)\n');

  const shape: LayoutShape = { hosts: 100, children: 20, concurrency: 4 };
  const flows = 300;
  if (MAJORS.length > 1) {
    const layout: Record<Major, LayoutResult[]> = { 5: [], 6: [] };
    for (const major of schedule(runs)) layout[major].push(await layoutRun(major, shape, flows));
    const jobs = layout[6][0]!.jobs;
    console.log(
      `XSM's queue layout, no-op processors: ${flows} wave parents x ${shape.children} children over ${shape.hosts} host queues (${jobs.toLocaleString('en-US')} jobs)`,
    );
    console.log(
      table(
        ['engine', 'jobs/s', 'p50 ms', 'p99 ms', 'CPU ms per job (this process)', 'every job exactly once'],
        MAJORS.map((major) => {
          const rs = layout[major];
          return [
            versions[major],
            spread(rs.map((r) => r.jobsPerSec)),
            spread(rs.map((r) => r.p50)),
            spread(rs.map((r) => r.p99)),
            spread(
              rs.map((r) => r.clientCpuMsPerJob),
              3,
            ),
            rs.every((r) => r.missing === 0 && r.duplicated === 0) ? `yes (${rs.length}/${rs.length})` : 'NO',
          ];
        }),
      ),
    );
    console.log(
      `BullMQ 6 / BullMQ 5: throughput x${ratio((r) => r.jobsPerSec, layout[6], layout[5])}, p99 x${ratio((r) => r.p99, layout[6], layout[5])}, CPU per job x${ratio((r) => r.clientCpuMsPerJob, layout[6], layout[5])}\n`,
    );
  }

  const apply: Record<Major, { baseline: Result[]; measured: Result[] }> = {
    5: { baseline: [], measured: [] },
    6: { baseline: [], measured: [] },
  };
  // The raw baseline of issue 20: XSM's measured apply as one flow of no-op jobs, run between XSM's runs.
  const rawShape: LayoutShape = { hosts: Number(h), children: Number(v), concurrency: 8 };
  const raw: RawRun[] = [];
  // The same no-op jobs carrying what XSM's create jobs carry, to weigh the payload apart from XSM's work.
  const payload = createJobData(Number(h), Number(v));
  const rawWithData: RawRun[] = [];
  for (const major of schedule(runs)) {
    apply[major].baseline.push(await applyRun(major, 'baseline', Number(bh), Number(bv), procs));
    if (major === 6) raw.push(await layoutRun(6, rawShape, 1));
    if (major === 6) rawWithData.push(await layoutRun(6, { ...rawShape, payload }, 1));
    apply[major].measured.push(await applyRun(major, 'measured', Number(h), Number(v), procs));
  }
  console.log(
    NOOP_AGENTS
      ? `XSM's control process with NO-OP agents (XSM_BENCH_AGENT=noop: the agents' workers complete each job at once; no VM is made): ${procs} agent processes`
      : `XSM's own apply, end to end: ${procs} agent processes, simulated hosts with zero-delay xl`,
  );
  const rows: string[][] = [];
  for (const major of MAJORS)
    for (const label of ['baseline', 'measured'] as const) {
      const rs = apply[major][label];
      rows.push([
        `BullMQ ${major}`,
        label,
        `${rs[0]!.hosts} / ${rs[0]!.vms}`,
        spread(
          rs.map((r) => r.seconds),
          2,
        ),
        spread(rs.map((r) => r.actionsPerSec)),
        spread(rs.map((r) => r.p50)),
        spread(rs.map((r) => r.p99)),
        spread(
          rs.map((r) => r.cpuMsPerAction),
          2,
        ),
      ]);
    }
  console.log(
    table(
      ['engine', 'run', 'hosts / VMs', 'seconds', 'actions/s', 'p50 ms', 'p99 ms', 'CPU ms per action (XSM processes)'],
      rows,
    ),
  );
  const m6 = apply[6].measured;
  const m5 = apply[5].measured;
  const b6 = apply[6].baseline;
  // With XSM_BENCH_MAJORS=6 there is no BullMQ 5 run to compare with: say nothing rather than x1.00.
  if (m5.length)
    console.log(
      `\nBullMQ 6 / BullMQ 5 at ${m6[0]!.hosts} hosts / ${m6[0]!.vms} VMs: throughput x${ratio((r) => r.actionsPerSec, m6, m5)}, p99 x${ratio((r) => r.p99, m6, m5)}, CPU per action x${ratio((r) => r.cpuMsPerAction, m6, m5)}`,
    );
  console.log(
    `BullMQ 6 measured/baseline: size x${(m6[0]!.vms / b6[0]!.vms).toFixed(0)}, time x${ratio((r) => r.seconds, m6, b6)}, throughput x${ratio((r) => r.actionsPerSec, m6, b6)}`,
  );
  printRawComparison(raw, m6, { runs: rawWithData, bytes: JSON.stringify(payload).length });
  const goal = median(m6.map((r) => r.actionsPerSec));
  console.log(
    `goal >= 1000 actions/s at ${m6[0]!.hosts} hosts / ${m6[0]!.vms} VMs on BullMQ 6: ${goal >= 1000 ? 'MET' : 'NOT MET'}`,
  );
}

/** One run of raw BullMQ in XSM's layout, with the Redis commands it sent. */
type RawRun = LayoutResult & { commands: Record<string, number> };

/** One create job's data as the control worker enqueues it for the measured site (its first create). */
function createJobData(hosts: number, vms: number): ActionJobData {
  const site = generateSite(hosts, vms, 7);
  const action = planChanges(undefined, site).actions.find((a) => a.kind === 'create');
  if (action?.kind !== 'create') throw new Error('the generated site plans no create');
  return { version: 1, action, template: indexSite(site).templates.get(action.spec.config), epoch: 0, restart: false };
}

/** XSM's apply against raw BullMQ in the same layout: throughput, and Redis commands per action by command. */
function printRawComparison(raw: RawRun[], xsm: Result[], withData: { runs: RawRun[]; bytes: number }): void {
  const vms = xsm[0]!.vms;
  console.log(
    `\nRaw BullMQ 6 in XSM's layout (one flow: a parent on the control queue, ${vms.toLocaleString('en-US')} no-op children over ${xsm[0]!.hosts.toLocaleString('en-US')} host queues, XSM's action job options, concurrency 8) beside XSM's apply of the same size:`,
  );
  const rawRow = (label: string, runs: RawRun[]) => [
    label,
    spread(runs.map((r) => r.jobsPerSec)),
    spread(
      runs.map((r) => r.seconds),
      2,
    ),
    spread(
      runs.map((r) => sum(r.commands) / vms),
      1,
    ),
    spread(
      runs.map((r) => r.clientCpuMsPerJob),
      2,
    ),
  ];
  console.log(
    table(
      ['run', 'actions/s', 'seconds', 'Redis commands per action', 'client CPU ms per action'],
      [
        rawRow('raw BullMQ 6', raw),
        rawRow(`raw BullMQ 6, each job carrying a create's data (${withData.bytes} bytes of JSON)`, withData.runs),
        [
          'XSM apply',
          spread(xsm.map((r) => r.actionsPerSec)),
          spread(
            xsm.map((r) => r.seconds),
            2,
          ),
          spread(
            xsm.map((r) => sum(r.commands ?? {}) / vms),
            1,
          ),
          spread(
            xsm.map((r) => r.cpuMsPerAction),
            2,
          ),
        ],
      ],
    ),
  );
  console.log(
    `XSM's submit (parse, validate, plan, store; no job runs before it ends): ${spread(
      xsm.map((r) => r.submitSeconds),
      2,
    )} s of its ${spread(
      xsm.map((r) => r.seconds),
      2,
    )} s`,
  );
  console.log(
    `XSM's CPU per action by process, submit to converged: control ${spread(
      xsm.map((r) => r.controlCpuMsPerAction),
      2,
    )} ms, agents ${spread(
      xsm.map((r) => r.agentsCpuMsPerAction),
      2,
    )} ms (raw: producer and workers in one process)`,
  );
  const xsmRate = median(xsm.map((r) => r.actionsPerSec));
  const share = xsmRate / median(raw.map((r) => r.jobsPerSec));
  console.log(`XSM / raw throughput: ${share.toFixed(2)} (goal >= 0.8: ${share >= 0.8 ? 'MET' : 'NOT MET'})`);
  console.log(
    `XSM / raw carrying a create's data: ${(xsmRate / median(withData.runs.map((r) => r.jobsPerSec))).toFixed(2)}`,
  );
  const kinds = new Set([...raw, ...xsm].flatMap((r) => Object.keys(r.commands ?? {})));
  const per = (rs: { commands?: Record<string, number> }[], k: string) =>
    median(rs.map((r) => (r.commands?.[k] ?? 0) / vms));
  const rows = [...kinds]
    .map((k) => ({ k, x: per(xsm, k), r: per(raw, k) }))
    .filter((c) => c.x >= 0.05 || c.r >= 0.05)
    .sort((a, b) => b.x - a.x);
  console.log(
    "\nRedis commands per action by command (medians; INFO commandstats deltas on the benchmark's own Redis):",
  );
  console.log(
    table(
      ['command', 'XSM', 'raw', 'XSM - raw'],
      rows.map((c) => [c.k, c.x.toFixed(2), c.r.toFixed(2), (c.x - c.r).toFixed(2)]),
    ),
  );
}

function sum(c: Record<string, number>): number {
  return Object.values(c).reduce((a, b) => a + b, 0);
}

if (process.argv.includes('--child')) {
  // Traced when bench/tracing-overhead.ts sets OTEL_EXPORTER_OTLP_ENDPOINT; a no-op otherwise.
  await startTracing('xsm-bench-agents');
  process.once('message', (init: ChildInit) => void child(init));
} else if (process.argv.includes('--apply-run')) {
  await startTracing('xsm-bench-control');
  const [label, hosts, vms, procs] = process.argv.slice(process.argv.indexOf('--apply-run') + 1);
  const onV5 = ['bullmq', 'ioredis'].every((m) => import.meta.resolve(m).includes('/bullmq-v5/'));
  if (onV5 !== (process.env.XSM_BENCH_BULLMQ === '5')) throw new Error('bench/bullmq-major.mjs did not load');
  const r = await run(label!, Number(hosts), Number(vms), Number(procs));
  await flushTracing();
  process.send!(r, () => process.exit(0));
} else {
  const sizes = sizesFromArgs(process.argv.slice(2));
  const stop = process.env.XSM_BENCH_SHARED_REDIS === '1' ? () => {} : await privateRedis();
  try {
    await main(sizes);
  } finally {
    stop();
  }
}
