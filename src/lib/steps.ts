// Durable multistep jobs: a workflow is an ordered list of named, idempotent steps. The journal (stored
// in the BullMQ job's data) records which steps finished, so a job picked up again after a crash resumes
// at the step that was running, and that step first looks at the real world before acting.

import type { Job } from 'bullmq';
import type { Logger } from './log.ts';

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
}

export interface JournalState {
  done: string[];
  /** The step that was started and not yet recorded as done. */
  current?: string;
  /** Attempts per step, for logs. */
  attempts?: Record<string, number>;
}

export interface StepJournal {
  load(): JournalState;
  save(state: JournalState): Promise<void>;
  progress(p: StepProgress): Promise<void>;
}

/** A journal kept in `job.data.journal`, persisted with job.updateData before and after every step. */
export function jobJournal<T extends { journal?: JournalState }>(job: Job<T>): StepJournal {
  return {
    load: () => job.data.journal ?? { done: [] },
    save: async (state) => {
      await job.updateData({ ...job.data, journal: state });
    },
    progress: async (p) => {
      await job.updateProgress(p as unknown as object);
    },
  };
}

/** A journal in memory, for tests and for running a workflow without a queue. */
export function memoryJournal(initial: JournalState = { done: [] }): StepJournal & { state: JournalState; reports: StepProgress[] } {
  const j = {
    state: structuredClone(initial),
    reports: [] as StepProgress[],
    load: () => j.state,
    save: async (s: JournalState) => {
      j.state = structuredClone(s);
    },
    progress: async (p: StepProgress) => {
      j.reports.push(p);
    },
  };
  return j;
}

export async function runSteps<C>(workflow: string, steps: readonly Step<C>[], ctx: C, journal: StepJournal, log: Logger): Promise<void> {
  const names = new Set<string>();
  for (const s of steps) {
    if (names.has(s.name)) throw new Error(`workflow ${workflow}: step name ${s.name} is used twice`);
    names.add(s.name);
  }
  let state = journal.load();
  const total = steps.length;
  for (const [i, step] of steps.entries()) {
    if (state.done.includes(step.name)) continue;
    const resumed = state.current === step.name;
    const attempts = { ...(state.attempts ?? {}), [step.name]: (state.attempts?.[step.name] ?? 0) + 1 };
    state = { ...state, current: step.name, attempts };
    await journal.save(state);
    const base: StepProgress = { workflow, step: step.name, index: i + 1, total };
    await journal.progress(base);
    const stepLog = log.child({ workflow, step: step.name });
    stepLog.info(resumed ? 'step resumed' : 'step started', { attempt: attempts[step.name] });
    const started = Date.now();
    await step.run(ctx, {
      log: stepLog,
      resumed,
      report: (detail) => journal.progress({ ...base, ...detail }),
    });
    state = { ...state, done: [...state.done, step.name], current: undefined };
    await journal.save(state);
    stepLog.info('step done', { ms: Date.now() - started });
  }
  await journal.progress({ workflow, step: 'done', index: total, total });
}
