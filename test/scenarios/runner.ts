// Replays a scenario on the simulator through XSM's real path — submit (planned once, stored with its plan)
// -> apply on the control queue -> per-host BullMQ jobs -> host agents -> simulated Xen hosts — against real
// Redis, and records a trace: the whole site's domains after every change a simulated host makes, every
// submit's answer, the stored plans, the jobs that ran, and how the last apply ended. The invariants
// (invariants.ts) are then checked on the trace. A scenario with a `stall` also logs the changing toolstack
// calls on its host, and its `log` (written by hand, never recorded) is compared whole.

import { MemorySimStore, type SimHostState } from '../../src/drivers/hypervisor/simulated.ts';
import { submitSite } from '../../src/services/site-service.ts';
import { versionOutcome } from '../../src/services/inspect.ts';
import { siteXml, type SiteExtras, type VmLine } from '../integration/fixtures.ts';
import {
  provisionSimPool,
  SimulatedStorage,
  type SimPoolSpec,
  type SimPoolStore,
} from '../../src/drivers/storage/simulated.ts';
import { startTestSite, type TestSite } from '../integration/harness.ts';
import { INVARIANTS, type Trace, type WorldState } from './invariants.ts';
import { PrivateRedis } from './private-redis.ts';
import { runRebalance, type RebalanceRequest } from '../../src/services/rebalance-service.ts';
import { drainHost, undrainHost } from '../../src/services/drain-service.ts';
import { getUpgrade, startUpgrade } from '../../src/services/upgrade-service.ts';
import { XsmRuntime } from '../../src/runtime/runtime.ts';
import { DEFAULT_MIGRATION_LIMITS, type MigrationLimits } from '../../src/state/migration-slot-store.ts';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';

export type Step =
  /** Submit a version with these VMs (on the scenario's hosts). */
  | {
      submit: VmLine[];
      consent?: boolean;
      expect: 'stored' | 'refused' | 'unchanged';
      apply?: boolean;
      /** Store identical content again so its plan repairs drift. */
      repair?: boolean;
      /** Kill this host's agent the first time its workflow calls `op`, then start a new agent. */
      crash?: Crash;
      /** Hold this host's first `op` call, its agent's lock renewal stopped, until the job was taken over. */
      stall?: Stall;
      /** Restart Redis `afterMs` after the version is stored, while its apply runs; down for `downMs`. */
      restartRedis?: { afterMs: number; downMs: number };
      /** The apply must end within this long (default 30 s): how soon work resumes after an outage. */
      endsWithinMs?: number;
    }
  /** Submit several versions at once on the same base: exactly one may be stored. */
  | { race: VmLine[][] }
  /** Destroy a VM behind XSM's back (drift). */
  | { destroy: string }
  /** Start an unmanaged domain using memory on a host (someone else's guest). */
  | { hog: string; memMiB: number }
  /** Enqueue the apply of the current version (stored with apply: false). */
  | { applyCurrent: true }
  /** Someone else's file takes `mib` of a simulated pool (its key: `name@host`, or the NFS pool's name). */
  | { fillPool: string; mib: number }
  /** Stop Redis while nothing runs (every worker idle, blocked on it) and start it again `downMs` later. */
  | { redisOutage: { downMs: number } }
  /**
   * Run the rebalancer `rounds` times (default 1), each round on `workers` control workers at once (default 1,
   * each its own runtime on the same Redis), waiting for a written version's apply to end between rounds.
   */
  | { rebalance: RebalanceRequest; workers?: number; rounds?: number }

  /** An operator removes an xl config file from a Dom0 (its agent reports the change before the next step). */
  | { removeConfigFile: string; host: string }

  /** `xsm host drain HOST` (consent: `--yes`); `expect` stored or refused (the pre-check found a VM stuck). */
  | { drain: string; consent?: boolean; expect: 'stored' | 'refused' }
  /** `xsm host undrain HOST [--return]`. */
  | { undrain: string; return?: boolean }
  /**
   * `xsm hosts upgrade --image IMAGE [--hosts ...]` on the simulated updater (a Dom0 reboot), followed to the
   * end. `failUpdate`: that host's update fails with this reason. `crashControlAt`: the control worker is
   * killed as that host's update starts, and a fresh one resumes the job.
   */
  | {
      upgrade: { image: string; hosts?: string[]; consent?: boolean };
      failUpdate?: { host: string; why: string };
      crashControlAt?: string;
      expect: 'completed' | 'failed';
    };

/**
 * A host agent killed in the middle of a step, as `kill -9` would: its job is neither finished nor failed,
 * its lock is not renewed, and a new agent takes the job over (BullMQ's stalled-job check) and resumes it at
 * that step from the journal. `after`: the toolstack call took effect before the process died, so the
 * resumed step must find the change already made; `before`: it died first.
 */
export interface Crash {
  host: string;
  /** A toolstack call, or a disk operation of the storage driver (`provision`, `copy`). */
  op: 'create' | 'migrate' | 'shutdown' | 'destroy' | 'setMemory' | 'setVcpus' | 'provision' | 'copy';
  when: 'before' | 'after';
}

/** The toolstack calls that change a domain. */
type ChangingOp = 'create' | 'migrate' | 'shutdown' | 'destroy' | 'setMemory' | 'setVcpus';

/**
 * A job's lock lapsing while its worker still runs it: the agent's first `op` call (before or after it
 * took effect) holds for `ms`, and the locks of the jobs running then are not renewed meanwhile, as in a
 * process whose event loop is frozen (a long GC pause, a starved Dom0, SIGSTOP). BullMQ's stalled-job check
 * finds the lock gone and hands the job to a worker that runs it again from its journal, while the first run
 * is still inside its step; when the hold ends the first run carries on. `ms` must pass the agent's lock
 * duration and stalled-check interval for the takeover to happen (the runner fails the scenario if it did not).
 */
export interface Stall {
  host: string;
  /** A changing call, or `find`: check-plan's look at the host, made before the job's first journal write. */
  op: ChangingOp | 'find';
  when: 'before' | 'after';
  ms: number;
  /**
   * Hold the takeover's own `op` call (the next one, made while the first is held) until this long after the
   * first run's release: the first run goes on first, and the takeover then sees what it did or did not do.
   */
  holdTakeoverMs?: number;
}

/** Pools for a scenario: the site file's <Pools> and templates, and the simulated pools behind them. */
export interface ScenarioStorage {
  extras: SiteExtras;
  /** Kept by the test, to look at the disks afterwards. */
  store: SimPoolStore;
  pools: SimPoolSpec[];
}

export interface Scenario {
  name: string;
  hosts: { name: string; memMiB: number; cpus?: number }[];
  steps: Step[];
  /** Run on a Redis of the scenario's own (needed to restart it). */
  privateRedis?: boolean;
  /** The last apply's end state the scenario means to reach (the invariants hold either way). */
  ends?: 'converged' | 'partially-failed';
  /** Storage pools (agents then run a simulated storage driver). */
  storage?: ScenarioStorage;
  /** The agents' live-migration limits (default 4/1/2), which `migrationLimitsHeld` checks. */
  migrationLimits?: MigrationLimits;
  /** The control worker's job lock in ms (default 30 s): a crashed control worker's job resumes this soon. */
  controlLockMs?: number;
  /** A known defect this scenario shows, not fixed yet: registered with ava's `failing` until it is. */
  knownDefect?: string;
  /**
   * The expected log: every toolstack call that changes a domain on the host of a `stall`, in the order
   * made, with how it ended (`h1 create vm0: done`, `h1 create vm0: refused: ...`), and the stall's own
   * lines. The run must produce exactly this log.
   */
  log?: string[];
}

/** The toolstack calls that change a domain, and the domain each names. */
const CHANGING_CALLS: Record<ChangingOp, (args: unknown[]) => string> = {
  create: (a) => (a[0] as { name: string }).name,
  migrate: (a) => `${String(a[0])} to ${(a[1] as { host: string }).host}`,
  shutdown: (a) => (a[2] === undefined ? String(a[0]) : `${String(a[0])} (domid ${String(a[2])})`),
  destroy: (a) => String(a[0]),
  setMemory: (a) => `${String(a[0])} ${String(a[1])} MiB`,
  setVcpus: (a) => `${String(a[0])} ${String(a[1])} vCPUs`,
};

/** A simulator store that records the whole site's domains after every change, at the moment it is made. */
export class RecordingStore extends MemorySimStore {
  private readonly mirror = new Map<string, SimHostState>();
  constructor(private readonly states: WorldState[]) {
    super();
  }
  private record(cause: string): void {
    const hosts: WorldState['hosts'] = {};
    for (const [name, s] of this.mirror)
      hosts[name] = s.domains
        .filter((d) => d.domid !== 0)
        .map((d) => ({ name: d.name, state: d.state, memMiB: d.memMiB, vcpus: d.vcpus }));
    this.states.push({ cause, hosts });
  }
  override async update<T>(host: string, fn: (s: SimHostState) => T): Promise<T> {
    return super.update(host, (s) => {
      const out = fn(s);
      // Runs right before the store commits `s`: the recorded world is exactly the one after this change.
      this.mirror.set(host, structuredClone(s));
      this.record(host);
      return out;
    });
  }
  override async put(state: SimHostState): Promise<void> {
    await super.put(state);
    this.mirror.set(state.name, structuredClone(state));
  }
  /** A change made outside any host's toolstack (a fault). */
  async fault(host: string, cause: string, fn: (s: SimHostState) => void): Promise<void> {
    await super.update(host, (s) => {
      fn(s);
      this.mirror.set(host, structuredClone(s));
      this.record(cause);
    });
  }
}

/**
 * Arms `crash`: the host's agent is replaced by one whose hypervisor, on the first `op`, kills that agent
 * (a forced close: the running job is abandoned, not failed) and starts a fresh agent on the real one.
 * Returns whether it fired.
 */
async function armCrash(s: TestSite, crash: Crash, disks: DiskTrap): Promise<() => boolean> {
  if (crash.op === 'provision' || crash.op === 'copy') return disks.arm(crash, s);
  const real = s.hv.get(crash.host)!;
  let fired = false;
  const kill = async () => {
    const victim = s.agents.get(crash.host)!;
    await victim.worker.close(true);
    await victim.close();
    s.hv.set(crash.host, real);
    s.startAgent(crash.host);
  };
  const trapped = new Proxy(real, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop);
      if (typeof v !== 'function') return v;
      if (prop !== crash.op || fired) return (v as (...a: unknown[]) => unknown).bind(target);
      return async (...args: unknown[]) => {
        fired = true;
        if (crash.when === 'after') await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        void kill();
        // The killed process never sees the call return.
        return new Promise(() => {});
      };
    },
  });
  await s.agents.get(crash.host)!.close();
  s.hv.set(crash.host, trapped);
  s.startAgent(crash.host);
  return () => fired;
}

/** The lock tokens of a queue's active jobs: the runs going on now. */
async function activeLockTokens(queue: Queue, redis: Redis): Promise<Set<string>> {
  const tokens = new Set<string>();
  for (const job of await queue.getActive())
    if (job?.id) {
      const token = await redis.get(`${queue.qualifiedName}:${job.id}:lock`);
      if (token) tokens.add(token);
    }
  return tokens;
}

/**
 * Arms `stall` (see Stall): the host's agent is replaced by one whose hypervisor logs every changing call
 * into `log` and holds the first `op` call for `stall.ms`, the locks of the jobs running then not renewed.
 * Returns whether the held job was taken over (BullMQ moved it back to wait and a worker started it again).
 */
async function armStall(s: TestSite, stall: Stall, log: string[]): Promise<() => boolean> {
  const real = s.hv.get(stall.host)!;
  let fired = false;
  let takenOver = false;
  let holding = false;
  let takeoverHeld = false;
  let release = () => {};
  const released = new Promise<void>((r) => (release = r));
  const hold = async (): Promise<void> => {
    holding = true;
    const worker = s.agents.get(stall.host)!.worker;
    const renew = worker.extendJobLocks.bind(worker);
    // A frozen process renews none of its runs' locks (BullMQ's lock manager still believes it does). A run
    // started meanwhile is the takeover's, as if in another process: it renews its own.
    const frozen = await activeLockTokens(s.rt.hostQueue(stall.host), s.rt.redis);
    worker.extendJobLocks = (ids, tokens, ms) => {
      const live = ids.flatMap((id, i) => (frozen.has(tokens[i]!) ? [] : [{ id, token: tokens[i]! }]));
      if (!live.length) return Promise.resolve([]);
      return renew(
        live.map((l) => l.id),
        live.map((l) => l.token),
        ms,
      );
    };
    const onStalled = () => void (takenOver = true);
    worker.on('stalled', onStalled);
    log.push(`${stall.host} ${stall.op} held ${stall.when} it took effect; the agent renews no lock`);
    await new Promise((r) => setTimeout(r, stall.ms));
    worker.extendJobLocks = renew;
    worker.off('stalled', onStalled);
    log.push(`${stall.host} ${stall.op} released${takenOver ? ' after its job was taken over' : ''}`);
    holding = false;
    release();
  };
  // The takeover's own call, made while the first run is held, waits until after its release.
  const holdTakeover = async (): Promise<void> => {
    if (stall.holdTakeoverMs === undefined || !holding || takeoverHeld) return;
    takeoverHeld = true;
    log.push(`${stall.host} ${stall.op} of the takeover held until the first run is released`);
    await released;
    await new Promise((r) => setTimeout(r, stall.holdTakeoverMs));
    log.push(`${stall.host} ${stall.op} of the takeover released`);
  };
  const logged = new Proxy(real, {
    get(target, prop) {
      const v: unknown = Reflect.get(target, prop);
      if (typeof v !== 'function') return v;
      const call = (v as (...a: unknown[]) => Promise<unknown>).bind(target);
      const describe = CHANGING_CALLS[prop as ChangingOp] as ((args: unknown[]) => string) | undefined;
      if (!describe && prop !== stall.op) return call;
      return async (...args: unknown[]) => {
        const stalled = prop === stall.op && !fired;
        if (stalled) fired = true;
        else if (prop === stall.op) await holdTakeover();
        if (stalled && stall.when === 'before') await hold();
        if (!describe) {
          // A read (check-plan's look at the host): held, never logged.
          const out = await call(...args);
          if (stalled && stall.when === 'after') await hold();
          return out;
        }
        const line = `${stall.host} ${String(prop)} ${describe(args)}`;
        try {
          const domains = async () => (await real.list()).map((d) => `${d.domid} ${d.name} ${d.state}`).join(',');
          const before = await domains();
          const out = await call(...args);
          // A call that returns having changed nothing (xl's shutdown of a domid that is gone) is logged as
          // such: it is not an action done, twice or otherwise.
          log.push(`${line}: ${(await domains()) === before ? 'no effect' : 'done'}`);
          if (stalled && stall.when === 'after') await hold();
          return out;
        } catch (e) {
          log.push(`${line}: refused: ${e instanceof Error ? e.message : String(e)}`);
          throw e;
        }
      };
    },
  });
  await s.agents.get(stall.host)!.close();
  s.hv.set(stall.host, logged);
  s.startAgent(stall.host);
  return () => takenOver;
}

/** The storage drivers' crash hook: kills the host's agent at the armed disk operation, as armCrash does. */
class DiskTrap {
  private armed: Crash | undefined;
  private fired = false;
  private site: TestSite | undefined;
  arm(crash: Crash, s: TestSite): () => boolean {
    this.armed = crash;
    this.fired = false;
    this.site = s;
    return () => this.fired;
  }
  hook(host: string) {
    return async (op: string, when: 'before' | 'after') => {
      const c = this.armed;
      if (!c || this.fired || c.host !== host || c.op !== op || c.when !== when) return;
      this.fired = true;
      const s = this.site!;
      void (async () => {
        const victim = s.agents.get(host)!;
        await victim.worker.close(true);
        await victim.close();
        s.startAgent(host);
      })();
      return new Promise<void>(() => {});
    };
  }
}

const refusal = (e: unknown) => (e instanceof Error ? `${e.name}: ${e.message}` : String(e));

export async function runScenario(sc: Scenario): Promise<{ trace: Trace; problems: string[] }> {
  const trace: Trace = {
    states: [],
    submits: [],
    plans: {},
    storedVersions: [],
    jobs: [],
    outOfBand: [],
    unmanaged: [],
    desired: [],
    migrationLimits: sc.migrationLimits ?? DEFAULT_MIGRATION_LIMITS,
    rebalances: [],
    hostMemMiB: Object.fromEntries(sc.hosts.map((h) => [h.name, h.memMiB])),
    hostChecks: [],
    log: [],
  };
  const problems: string[] = [];
  const store = new RecordingStore(trace.states);
  const redis = sc.privateRedis ? await PrivateRedis.start() : undefined;
  const disks = new DiskTrap();
  const st = sc.storage;
  for (const p of st?.pools ?? []) provisionSimPool(st!.store, p);
  const s: TestSite = await startTestSite(sc.hosts, {
    store,
    ...(redis ? { redisUrl: redis.url } : {}),
    ...(st ? { storage: (host: string) => new SimulatedStorage(st.store, host, 20, disks.hook(host)) } : {}),
    ...(sc.migrationLimits ? { migrationLimits: sc.migrationLimits } : {}),
    ...(sc.controlLockMs ? { controlLockMs: sc.controlLockMs } : {}),
  });
  try {
    type Answer = { version?: number; unchanged?: boolean; refused?: string };
    const submit = async (
      vms: VmLine[],
      consent: boolean,
      apply: boolean,
      base?: number,
      repair = false,
    ): Promise<Answer> => {
      const b = base ?? (await s.rt.sites.currentVersion());
      try {
        const r = await submitSite(s.rt, {
          xml: siteXml(sc.hosts, vms, st?.extras),
          file: `${sc.name}.xml`,
          base: b,
          author: 'scenario',
          reason: sc.name,
          consent: consent ? 'operator' : 'none',
          apply,
          repair,
        });
        const rec = r.unchanged ? { version: r.version, unchanged: true } : { version: r.version };
        trace.submits.push(rec);
        return rec;
      } catch (e) {
        const rec = { refused: refusal(e) };
        trace.submits.push(rec);
        return rec;
      }
    };
    for (const [i, step] of sc.steps.entries()) {
      if ('submit' in step) {
        const fired = step.crash ? await armCrash(s, step.crash, disks) : undefined;
        const takenOver = step.stall ? await armStall(s, step.stall, (trace.log ??= [])) : undefined;
        const r = await submit(step.submit, step.consent ?? false, step.apply ?? true, undefined, step.repair ?? false);
        const got = r.refused !== undefined ? 'refused' : r.unchanged ? 'unchanged' : 'stored';
        if (got !== step.expect) problems.push(`step ${i}: expected ${step.expect}, got ${got} ${JSON.stringify(r)}`);
        if (step.restartRedis) {
          if (!redis) throw new Error(`step ${i}: restartRedis needs privateRedis: true on the scenario`);
          await new Promise((done) => setTimeout(done, step.restartRedis!.afterMs));
          await outage(redis, step.restartRedis.downMs);
        }
        if (got === 'stored' && (step.apply ?? true)) await s.waitApplyEnded(r.version!, step.endsWithinMs ?? 30_000);
        if (fired && !fired()) problems.push(`step ${i}: the agent of ${step.crash!.host} was never killed`);
        if (takenOver) {
          // The held run carries on after the apply ended: wait for its release, and what it then does.
          await eventually(async () => (trace.log ?? []).some((l) => / released/.test(l)), step.stall!.ms + 10_000);
          await new Promise((r) => setTimeout(r, 500));
          if (!takenOver()) problems.push(`step ${i}: the held job on ${step.stall!.host} was never taken over`);
        }
      } else if ('race' in step) {
        const base = await s.rt.sites.currentVersion();
        const rs = await Promise.all(step.race.map((vms) => submit(vms, true, true, base)));
        const stored = rs.filter((r) => r.version !== undefined && !r.unchanged);
        if (stored.length !== 1) problems.push(`step ${i}: ${stored.length} racing submits were stored, not 1`);
        for (const r of stored) await s.waitApplyEnded(r.version!, 30_000);
      } else if ('destroy' in step) {
        trace.outOfBand.push(step.destroy);
        for (const host of sc.hosts.map((h) => h.name))
          await store.fault(host, `fault: destroy ${step.destroy}`, (st) => {
            st.domains = st.domains.filter((d) => d.name !== step.destroy);
          });
        // The agents report within a heartbeat: the planner sees the drift.
        await eventually(async () =>
          Object.values((await s.rt.observed.all()).hosts).every(
            (h) => !h.domains.some((d) => d.name === step.destroy),
          ),
        );
      } else if ('hog' in step) {
        const name = `hog${i}`;
        trace.unmanaged.push(name);
        await store.fault(step.hog, `fault: ${name} takes ${step.memMiB} MiB on ${step.hog}`, (st) => {
          st.domains.push({
            name,
            domid: st.nextDomid++,
            state: 'running',
            memMiB: step.memMiB,
            maxMemMiB: step.memMiB,
            vcpus: 1,
            onlineVcpus: 1,
            cpuTimeSec: 0,
            tickAt: Date.now(),
          } as never);
        });
        await eventually(async () =>
          Boolean((await s.rt.observed.host(step.hog))?.domains.some((d) => d.name === name)),
        );
      } else if ('fillPool' in step) {
        if (!st) throw new Error(`step ${i}: fillPool needs the scenario's storage`);
        st.store.update(step.fillPool, (p) => void p.files.push({ name: `filler${i}`, sizeMiB: step.mib, sha256: '' }));
      } else if ('redisOutage' in step) {
        if (!redis) throw new Error(`step ${i}: redisOutage needs privateRedis: true on the scenario`);
        await outage(redis, step.redisOutage.downMs);
      } else if ('rebalance' in step) {
        await rebalanceRounds(s, trace, i, step);
      } else if ('removeConfigFile' in step) {
        await s.hv.get(step.host)!.removeConfigFile(step.removeConfigFile);
        await eventually(async () =>
          Boolean((await s.rt.observed.host(step.host))?.configFiles?.every((f) => f.name !== step.removeConfigFile)),
        );
      } else if ('drain' in step || 'undrain' in step) {
        const got = await hostStep(s, trace, i, step);
        if ('drain' in step && got !== step.expect)
          problems.push(`step ${i}: expected the drain ${step.expect}, got ${got}`);
      } else if ('upgrade' in step) {
        const got = await upgradeStep(s, trace, i, step);
        if (got !== step.expect) problems.push(`step ${i}: expected the upgrade ${step.expect}, got ${got}`);
      } else if ('applyCurrent' in step) {
        const { enqueueApply } = await import('../../src/services/site-service.ts');
        const v = await s.rt.sites.currentVersion();
        await enqueueApply(s.rt, v, 'scenario');
        await s.waitApplyEnded(v, 30_000);
      }
    }
    // What is stored, and what ran.
    const history = await s.rt.sites.history(1000);
    trace.storedVersions = history.map((h) => h.version).sort((a, b) => a - b);
    for (const v of trace.storedVersions) {
      const plan = await s.rt.sites.plan(v);
      trace.plans[v] = (plan?.actions ?? []).map((a) => ({
        id: a.id,
        kind: a.kind,
        vm: a.vm,
        disruptive: Boolean((a as { disruptive?: boolean }).disruptive),
        ...(a.kind === 'migrate' ? { from: a.from, to: a.to } : {}),
      }));
    }
    for (const q of await s.rt.allQueues()) {
      if (!q.name.startsWith('host-')) continue;
      for (const j of await q.getJobs(['completed', 'failed', 'active', 'waiting', 'delayed']))
        if (j)
          trace.jobs.push({
            id: j.id!,
            queue: q.name,
            version: (j.data as { version: number }).version,
            state: await j.getState(),
            ...(typeof j.progress === 'object' && j.progress && 'step' in j.progress
              ? { step: String(j.progress.step) }
              : {}),
          });
    }
    const last = trace.storedVersions.at(-1);
    if (last) {
      const { site } = await s.rt.sites.load(last);
      trace.desired = site.vms.map((v) => ({ name: v.name, host: v.host, memMiB: v.memMiB, vcpus: v.vcpus }));
      const o = await versionOutcome(s.rt, last);
      if (o) {
        trace.outcome = {
          version: o.version,
          state: o.state,
          actions: o.actions.map((a) => ({
            id: a.id,
            vm: a.vm,
            outcome: a.outcome,
            ...(a.reason ? { reason: a.reason } : {}),
          })),
        };
        if (sc.ends && o.state !== sc.ends && !(o.state === 'not-started' && trace.plans[last]?.length === 0)) {
          // Why it ended otherwise: each action that did not complete, with its reason.
          const why = o.actions
            .filter((a) => a.outcome !== 'done')
            .map((a) => `${a.vm} ${a.outcome}${a.reason ? `: ${a.reason}` : ''}`);
          problems.push(`the last apply ended ${o.state} (${why.join('; ')}), the scenario means ${sc.ends}`);
        }
      }
    }
  } finally {
    await s.close();
    await redis?.stop();
  }
  for (const [name, check] of Object.entries(INVARIANTS)) for (const v of check(trace)) problems.push(`${name}: ${v}`);
  problems.push(...staleRunActed(trace.log ?? []));
  if (sc.log && JSON.stringify(trace.log ?? []) !== JSON.stringify(sc.log))
    problems.push(
      `the log is not the expected one:\n  got:      ${(trace.log ?? []).join('\n            ')}\n  expected: ${sc.log.join('\n            ')}`,
    );
  return { trace, problems };
}

/**
 * Once a held job was taken over, the run it was taken from must change nothing more: each call it still
 * makes must be refused or have no effect (the takeover already did that work). A call that takes effect is
 * an action done twice.
 */
function staleRunActed(log: string[]): string[] {
  const at = log.findIndex((l) => l.endsWith('after its job was taken over'));
  if (at < 0) return [];
  // A takeover held past the release acts only once released: up to then, every call is the first run's.
  const until = log.findIndex((l) => l.endsWith('of the takeover released'));
  return log
    .slice(at + 1, until > at ? until : undefined)
    .filter((l) => l.endsWith(': done'))
    .map((l) => `the run whose job was taken over still acted: ${l}`);
}

async function outage(redis: PrivateRedis, downMs: number): Promise<void> {
  await redis.down();
  await new Promise((done) => setTimeout(done, downMs));
  await redis.up();
}

/** Runs a `rebalance` step: its rounds, each on its workers at once, recorded in the trace. */
async function rebalanceRounds(
  s: TestSite,
  trace: Trace,
  step: number,
  r: { rebalance: RebalanceRequest; workers?: number; rounds?: number },
): Promise<void> {
  // Each extra control worker is a process of its own: its own runtime (connection) on the same Redis.
  const others = Array.from({ length: (r.workers ?? 1) - 1 }, () => new XsmRuntime(s.rt.config));
  try {
    for (let round = 0; round < (r.rounds ?? 1); round++) {
      const results = await Promise.all([s.rt, ...others].map((rt) => runRebalance(rt, r.rebalance)));
      trace.rebalances.push({
        step,
        round,
        last: round === (r.rounds ?? 1) - 1,
        results: results.map((x) => ({
          ...(x.version !== undefined ? { version: x.version } : {}),
          ...(x.skipped ? { skipped: x.skipped } : {}),
          moves: x.moves.map((m) => ({ vm: m.vm, from: m.from, to: m.to })),
        })),
      });
      for (const x of results)
        if (x.version !== undefined) {
          trace.submits.push({ version: x.version });
          await s.waitApplyEnded(x.version, 30_000);
        }
    }
  } finally {
    await Promise.all(others.map((rt) => rt.close()));
  }
}

/** Runs a drain or undrain step through the drain service, as the API route does, and records its check. */
async function hostStep(
  s: TestSite,
  trace: Trace,
  step: number,
  d: { drain: string; consent?: boolean } | { undrain: string; return?: boolean },
): Promise<'stored' | 'refused'> {
  const host = 'drain' in d ? d.drain : d.undrain;
  const req = {
    host,
    author: 'scenario',
    consent: 'drain' in d && d.consent ? ('operator' as const) : ('none' as const),
    ...('undrain' in d && d.return ? { returnVms: true } : {}),
  };
  let o;
  try {
    o = 'drain' in d ? await drainHost(s.rt, req) : await undrainHost(s.rt, req);
  } catch (e) {
    trace.submits.push({ refused: refusal(e) });
    return 'refused';
  }
  const r = o.result!;
  trace.submits.push(r.unchanged ? { version: r.version, unchanged: true } : { version: r.version });
  if (!r.unchanged) await s.waitApplyEnded(r.version, 30_000);
  const on = (trace.states.at(-1)?.hosts[host] ?? []).map((x) => x.name).filter((n) => !trace.unmanaged.includes(n));
  trace.hostChecks!.push({
    step,
    host,
    kind: 'drain' in d ? 'drain' : 'return',
    moved: 'drain' in d || d.return ? o.moves.map((m) => m.vm) : [],
    on,
  });
  return 'stored';
}

/** The VMs the site's current version places on `host`. */
async function desiredOn(s: TestSite, host: string): Promise<string[]> {
  const { site } = await s.rt.sites.load(await s.rt.sites.currentVersion());
  return site.vms.filter((v) => v.host === host).map((v) => v.name);
}

/**
 * Runs an `upgrade` step as the API route does (plan, then the control job), follows the job to its end, and
 * records what the invariants check: each host's drain as its update starts (the host must be empty then),
 * each finished host's return, every version the upgrade stored, and the upgrade's own account.
 */
async function upgradeStep(
  s: TestSite,
  trace: Trace,
  step: number,
  u: Extract<Step, { upgrade: unknown }>,
): Promise<'completed' | 'failed' | 'refused'> {
  const before = new Set((await s.rt.sites.history(1000)).map((h) => h.version));
  // Where each VM lived before the scenario's first upgrade (a re-run after a failure starts with VMs away).
  const home = (trace.homes ??= new Map<string, string[]>());
  if (!home.size)
    for (const h of (await s.rt.sites.load(await s.rt.sites.currentVersion())).site.hosts)
      home.set(h.name, await desiredOn(s, h.name));
  s.updater.failures.clear();
  if (u.failUpdate) s.updater.failures.set(u.failUpdate.host, u.failUpdate.why);
  let crashed = false;
  s.updater.hooks.beforeUpdate = async (host) => {
    const on = (trace.states.at(-1)?.hosts[host] ?? []).map((d) => d.name).filter((n) => !trace.unmanaged.includes(n));
    trace.hostChecks!.push({ step, host, kind: 'drain', moved: home.get(host) ?? [], on });
    if (u.crashControlAt === host && !crashed) {
      crashed = true;
      void s.crashControl();
      // The killed worker never sees the update return.
      return new Promise<void>(() => {});
    }
  };
  let id: string;
  try {
    id = (
      await startUpgrade(s.rt, s.updater.method, {
        image: u.upgrade.image,
        ...(u.upgrade.hosts ? { hosts: u.upgrade.hosts } : {}),
        author: 'scenario',
        consent: u.upgrade.consent ? 'operator' : 'none',
        timeouts: { applyMs: 30_000, rejoinMs: 15_000 },
      })
    ).id!;
  } catch (e) {
    trace.submits.push({ refused: refusal(e) });
    (trace.upgrades ??= []).push({ step, refused: refusal(e), updates: [], crashed });
    return 'refused';
  }
  const until = Date.now() + 120_000;
  let view = await getUpgrade(s.rt, id);
  while (view?.state !== 'completed' && view?.state !== 'failed') {
    if (Date.now() > until) throw new Error(`step ${step}: upgrade ${id} did not end in 120 s: ${view?.summary}`);
    await new Promise((r) => setTimeout(r, 100));
    view = await getUpgrade(s.rt, id);
  }
  for (const h of (await s.rt.sites.history(1000)).map((x) => x.version).sort((a, b) => a - b))
    if (!before.has(h)) trace.submits.push({ version: h });
  for (const h of view.hosts.filter((x) => x.state === 'done')) {
    const on = (trace.states.at(-1)?.hosts[h.host] ?? []).map((d) => d.name);
    trace.hostChecks!.push({ step, host: h.host, kind: 'return', moved: home.get(h.host) ?? [], on });
  }
  (trace.upgrades ??= []).push({ step, view, updates: [...s.updater.calls], crashed });
  s.updater.calls.length = 0;
  s.updater.hooks.beforeUpdate = undefined;
  return view.state;
}

async function eventually(ok: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > until) throw new Error('the agents did not report the change in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Registers each scenario of a family as a serial ava test (one family a test file, so ava runs families in
 * parallel): no invariant may be broken, and the run must have done something for them to see.
 */
export function registerScenarios(test: typeof import('ava').default, scenarios: Scenario[]): void {
  for (const sc of scenarios) {
    // A known defect's scenario must keep failing: ava reports it passing as an error, so the fix lifts it.
    (sc.knownDefect ? test.serial.failing : test.serial)(sc.name, async (t) => {
      const { trace, problems } = await runScenario(sc);
      t.deepEqual(problems, []);
      // The invariants saw the run: every scenario creates VMs, so hosts changed and jobs ran.
      t.true(
        trace.states.length > 0 && trace.jobs.length > 0,
        `${trace.states.length} states, ${trace.jobs.length} jobs`,
      );
    });
  }
}
