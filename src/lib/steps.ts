// Durable multistep jobs: a workflow is an ordered list of named, idempotent steps. The journal (stored
// in the BullMQ job's data) records which steps finished, so a job picked up again after a crash resumes
// at the step that was running, and that step first looks at the real world before acting. A workflow
// that changes something it must not leave half done (a VM stopped for a resize) names rollback steps:
// once armed, a final failure runs them (journaled too, so a crash mid-rollback resumes it) and the job
// fails with what was put back. A job's journal is written only by the run that holds the job's BullMQ lock
// (jobJournal): a run whose lock lapsed and whose job was handed to another stops at its next write.

import { ATTR, inSpan } from './tracing.ts';
import type { Job } from 'bullmq';
import type { Logger } from './log.ts';
import { JobLostError } from './errors.ts';
import { LuaScript, type ScriptClient } from './lua-script.ts';

export interface StepProgress {
  workflow: string;
  step: string;
  /** 1-based position of the step and the number of steps. */
  index: number;
  total: number;
  /** Optional detail for long steps (image transfer): percent of this step, bytes, bytes/s. */
  percent?: number;
  bytes?: number;
  totalBytes?: number;
  rate?: number;
  message?: string;
}

export interface StepRuntime {
  log: Logger;
  /** Report progress inside the current step (shown by the dashboard and `xsm jobs --watch`). */
  report(detail: Partial<Pick<StepProgress, 'percent' | 'bytes' | 'totalBytes' | 'rate' | 'message'>>): Promise<void>;
  /** True when this step was started before (by a worker that died): check real state first. */
  resumed: boolean;
}

export interface Step<C> {
  name: string;
  /** Must be idempotent: look at the real state, then act only if the step's effect is not there yet. */
  run(ctx: C, rt: StepRuntime): Promise<void>;
  /**
   * The step only reads or computes: no effect on any host or store. Its start is not written: the end of
   * the step before it, its own end and the start of the next step reach Redis in one write (one round
   * trip less). A crash inside it resumes at the step before it, which nothing has acted after, so
   * rerunning that step is exact; every step that acts is still on record before it starts.
   * A function says it for one job: a step that acts only for some jobs (disks to make, when the VM has
   * any) is pure for the others. It must give the same answer every time for the same context.
   */
  pure?: boolean | ((ctx: C) => boolean);
}

export interface JournalState {
  done: string[];
  /** The step that was started and not yet recorded as done. */
  current?: string;
  /** Attempts per step, for logs. */
  attempts?: Record<string, number>;
  /** Set once a final failure started the rollback: why the forward steps failed. */
  rollback?: { cause: string };
}

/** What a workflow puts back when it fails for good after `armedAfter` finished. */
export interface Rollback<C> {
  /** The step after which a failure leaves something to undo (e.g. `stop-old`). */
  armedAfter: string;
  /** Journaled as `rollback:<name>`; each must be idempotent like any step. */
  steps: readonly Step<C>[];
  /** The error the job ends with once the rollback steps are done (say what runs again, and why). */
  outcome(cause: string, ctx: C): Error;
  /** How the job ends when a rollback step itself fails for good. */
  failed(cause: string, rollbackError: string, ctx: C): Error;
}

export interface RunOptions<C> {
  rollback?: Rollback<C>;
  /** Is this failure final (no retry will come)? Only final failures roll back. Default: none is. */
  isFinal?: (e: unknown) => boolean;
  /** Told how long each step that finishes took (the host agent records it as a histogram). */
  onStepDone?: (workflow: string, step: string, seconds: number) => void;
}

export interface StepJournal {
  load(): JournalState;
  /**
   * Persists the journal and the progress shown to users in one write. The runner records once before
   * the first step and once after each step (which also names the next step as current), so a finished
   * step is on record before anything else happens, at one Redis round trip per step.
   */
  record(state: JournalState, progress: StepProgress): Promise<void>;
}

/**
 * `{ ...base, ...changes }`, for the objects the runner and the journal build at every step: V8 (Node 20)
 * adds each field that a literal writes after a spread on a slow path, about 1 µs a field, where
 * Object.assign copies at the speed of a plain literal.
 */
function merged<T extends object>(base: T, changes: Partial<T>): T {
  return Object.assign({}, base, changes);
}

/** What a BullMQ job's progress holds: the user-facing progress plus the journal. */
export type JobProgress = StepProgress & { journal: JournalState };

/**
 * Writes a job's progress field if the run writing it still holds the job's lock (KEYS[2], BullMQ's
 * `<job key>:lock`, which holds the token of the worker run that owns the job). The fence: a run whose lock
 * lapsed (a starved or frozen process) may have been handed over to another run by BullMQ's stalled-job
 * check; its writes are refused from then on, and as every step that acts is journaled before it starts
 * (runForward), a run acts only after a write it made while it still owned the job. 3 Redis commands (EVALSHA,
 * GET, HSET) against BullMQ `updateProgress`'s 5 (it also reads the queue's event-stream limit and appends a
 * `progress` event; nothing in XSM reads that stream). A lock held by the run implies the job hash exists
 * (BullMQ removes no locked job; obliterating a queue deletes the locks too), so only a refusal looks further.
 */
const WRITE_PROGRESS = new LuaScript(`if redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('HSET', KEYS[1], 'progress', ARGV[1])
  return 0
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return -1
end
return -2`);

/**
 * The raw Redis client under a job: BullMQ 6's Redis backend offers it as its Redis-specific escape hatch
 * (`client`), on a field its typings keep protected; BullMQ 5 (the benchmarks' comparison) has it on the
 * job's queue. Undefined for a backend without one.
 */
function redisOf(job: Job): Promise<ScriptClient> | undefined {
  const j = job as unknown as {
    backend?: { client?: Promise<ScriptClient> };
    queue?: { client?: Promise<ScriptClient> };
  };
  return j.backend?.client ?? j.queue?.client;
}

/**
 * A journal kept in the job's progress (one HSET per write, no re-serialising of the job's data), written
 * only while the run holds the job's lock: a refused write throws JobLostError, and the run must stop.
 */
export function jobJournal<T>(job: Job<T>): StepJournal {
  return {
    load: () => {
      const p = job.progress as Partial<JobProgress> | number | undefined;
      return typeof p === 'object' && p?.journal ? structuredClone(p.journal) : { done: [] };
    },
    record: async (state, progress) => {
      const value: JobProgress = Object.assign({}, progress, { journal: state });
      const redis = redisOf(job as Job);
      // Unfenced writes would let a run that lost its job act on: none is made.
      if (!redis) throw new Error(`job ${job.id}: its queue's backend offers no Redis client to fence the journal`);
      if (!job.token)
        throw new Error(`job ${job.id} was not taken by a worker (no lock token): only its worker writes its journal`);
      const key = `${job.queueQualifiedName}:${job.id}`;
      const r = await WRITE_PROGRESS.run(await redis, [key, `${key}:lock`], [JSON.stringify(value), job.token]);
      if (r === -1)
        throw new Error(
          `job ${job.id} is gone from queue ${job.queueName}: its journal cannot be written, so its step is not run (removed or obliterated while running; look at who removed it)`,
        );
      if (r === -2)
        throw new JobLostError(
          `job ${job.id} of queue ${job.queueName} is no longer this run's (its lock lapsed and the job was handed over, or is about to be): this run stops without acting, and the job goes on from its journal`,
        );
      job.progress = value;
    },
  };
}

/** A journal in memory, for tests and for running a workflow without a queue. */
export function memoryJournal(
  initial: JournalState = { done: [] },
): StepJournal & { state: JournalState; reports: StepProgress[] } {
  const j = {
    state: structuredClone(initial),
    reports: [] as StepProgress[],
    load: () => structuredClone(j.state),
    record: async (s: JournalState, p: StepProgress) => {
      j.state = structuredClone(s);
      j.reports.push(p);
    },
  };
  return j;
}

export async function runSteps<C>(
  workflow: string,
  steps: readonly Step<C>[],
  ctx: C,
  journal: StepJournal,
  log: Logger,
  options: RunOptions<C> = {},
): Promise<void> {
  const names = new Set<string>();
  for (const s of steps) {
    if (names.has(s.name)) throw new Error(`workflow ${workflow}: step name ${s.name} is used twice`);
    names.add(s.name);
  }
  const { rollback } = options;
  const loaded = journal.load();
  if (rollback && loaded.rollback) return runRollback(workflow, rollback, ctx, journal, log, options);
  try {
    await runForward(workflow, steps, ctx, journal, log, options.onStepDone);
  } catch (e) {
    const state = journal.load();
    // A run that lost its job puts nothing back: the job's owner decides, from the journal.
    if (e instanceof JobLostError) throw e;
    if (!rollback || !state.done.includes(rollback.armedAfter) || !(options.isFinal?.(e) ?? false)) throw e;
    const cause = e instanceof Error ? e.message : String(e);
    log.warn('step failed for good; rolling back', { workflow, error: cause });
    await journal.record(
      { ...state, current: undefined, rollback: { cause } },
      { workflow, step: 'rollback', index: steps.length, total: steps.length, message: cause },
    );
    return runRollback(workflow, rollback, ctx, journal, log, options);
  }
}

/** Runs the rollback steps not done yet, then fails with the rollback's outcome (it never succeeds). */
async function runRollback<C>(
  workflow: string,
  rollback: Rollback<C>,
  ctx: C,
  journal: StepJournal,
  log: Logger,
  options: RunOptions<C>,
): Promise<never> {
  const cause = journal.load().rollback!.cause;
  const prefixed = rollback.steps.map((s) => ({ name: `rollback:${s.name}`, run: s.run }));
  try {
    await runForward(`${workflow} rollback`, prefixed, ctx, journal, log, options.onStepDone);
  } catch (e) {
    if (!(e instanceof JobLostError) && (options.isFinal?.(e) ?? false))
      throw rollback.failed(cause, e instanceof Error ? e.message : String(e), ctx);
    throw e;
  }
  throw rollback.outcome(cause, ctx);
}

async function runForward<C>(
  workflow: string,
  steps: readonly Step<C>[],
  ctx: C,
  journal: StepJournal,
  log: Logger,
  onStepDone?: RunOptions<C>['onStepDone'],
): Promise<void> {
  let state = journal.load();
  // A step recorded as current when the journal is loaded was started by a worker that died.
  const interrupted = state.current;
  const total = steps.length;
  const pure = (step: Step<C>) => (typeof step.pure === 'function' ? step.pure(ctx) : step.pure === true);
  const pending = steps
    .map((step, i) => ({ step, index: i + 1 }))
    .filter(({ step }) => !state.done.includes(step.name));
  const begin = (name: string): JournalState =>
    merged(state, {
      current: name,
      attempts: merged(state.attempts ?? {}, { [name]: (state.attempts?.[name] ?? 0) + 1 }),
    });
  if (pending[0]) {
    state = begin(pending[0].step.name);
    // A pure first step is not written either: a crash inside it leaves nothing done, and it runs again.
    if (!pure(pending[0].step))
      await journal.record(state, { workflow, step: pending[0].step.name, index: pending[0].index, total });
  }
  for (const [k, { step, index }] of pending.entries()) {
    const resumed = step.name === interrupted;
    const base: StepProgress = { workflow, step: step.name, index, total };
    const stepLog = log.child({ workflow, step: step.name });
    stepLog.info(resumed ? 'step resumed' : 'step started', { attempt: state.attempts?.[step.name] });
    const started = Date.now();
    const running = state;
    try {
      await inSpan(`step ${step.name}`, { [ATTR.step]: step.name, [ATTR.workflow]: workflow }, (span) => {
        if (resumed) span.setAttribute('xsm.step.resumed', true);
        return step.run(ctx, {
          log: stepLog,
          resumed,
          report: (detail) => journal.record(running, merged<StepProgress>(base, detail)),
        });
      });
    } catch (e) {
      // A pure step's start was not written: a job that fails in it still shows the step it failed in (the
      // operator reads it in `xsm jobs`). Only failures pay this write. A run that lost its job is refused
      // here too: what its step found (a plan gone stale under the run that took the job over) is not its to
      // report, and it stops with JobLostError instead.
      if (pure(step)) await journal.record(running, base);
      throw e;
    }
    onStepDone?.(workflow, step.name, (Date.now() - started) / 1000);
    state = merged(state, { done: [...state.done, step.name], current: undefined });
    const next = pending[k + 1];
    if (next) {
      // The finished step and the start of the next one reach Redis in the same write (before a pure step:
      // after it, with its end too).
      state = begin(next.step.name);
      if (!pure(next.step)) await journal.record(state, { workflow, step: next.step.name, index: next.index, total });
    } else {
      await journal.record(state, { workflow, step: 'done', index: total, total });
    }
    stepLog.info('step done', { ms: Date.now() - started });
  }
  if (!pending.length) await journal.record(state, { workflow, step: 'done', index: total, total });
}
