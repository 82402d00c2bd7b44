// How the run of each version's plan went: one outcome per action (done, failed with the reason, or
// blocked by the action it depended on) and the state of the whole apply, in Redis so the API, the CLI
// and every control worker see the same. Also the last version that ran to the end (converged).

import type { Redis } from 'ioredis';

export type ActionOutcome =
  { state: 'done' } | { state: 'failed'; reason: string } | { state: 'blocked'; blockedBy: string; reason: string };

/**
 * applying: waves are running. converged: every action done. partially-failed: some failed or were
 * blocked, everything else ran. superseded: a newer version was stored before this one finished; the
 * rest of its plan did not run.
 */
export type ApplyState = 'applying' | 'converged' | 'partially-failed' | 'superseded';

export interface ApplyStatus {
  state: ApplyState;
  /** Epoch ms of the last change. */
  at: number;
  /** One line for people: what did not run and why, or by which version this one was superseded. */
  summary?: string;
}

/** Outcomes per HSET when a wave's are recorded. */
export const RECORD_CHUNK = 1000;

export class ApplyStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}
  private outcomesKey(version: number) {
    return `${this.prefix}:apply:v${version}:outcomes`;
  }
  private statusKey(version: number) {
    return `${this.prefix}:apply:v${version}:status`;
  }
  private get convergedKey() {
    return `${this.prefix}:site:converged`;
  }

  async record(version: number, outcomes: ReadonlyMap<string, ActionOutcome>): Promise<void> {
    if (!outcomes.size) return;
    // A wave may hold 100,000 actions: spreading all their fields into one call overflows V8's stack, and
    // one command that size blocks Redis for everyone. Bounded HSETs in one MULTI stay all-or-nothing.
    const tx = this.redis.multi();
    let chunk = new Map<string, string>();
    for (const [id, o] of outcomes) {
      chunk.set(id, JSON.stringify(o));
      if (chunk.size < RECORD_CHUNK) continue;
      tx.hset(this.outcomesKey(version), chunk);
      chunk = new Map();
    }
    if (chunk.size) tx.hset(this.outcomesKey(version), chunk);
    const failed = (await tx.exec())?.find(([err]) => err)?.[0];
    if (failed) throw failed;
  }
  async outcomes(version: number): Promise<Map<string, ActionOutcome>> {
    const h = await this.redis.hgetall(this.outcomesKey(version));
    return new Map(Object.entries(h).map(([id, v]) => [id, JSON.parse(v) as ActionOutcome]));
  }

  async setStatus(version: number, status: Omit<ApplyStatus, 'at'>): Promise<void> {
    await this.redis.set(this.statusKey(version), JSON.stringify({ ...status, at: Date.now() }));
  }
  async status(version: number): Promise<ApplyStatus | undefined> {
    const v = await this.redis.get(this.statusKey(version));
    return v ? (JSON.parse(v) as ApplyStatus) : undefined;
  }

  async markConverged(version: number): Promise<void> {
    await this.redis.set(this.convergedKey, String(version));
  }
  async convergedVersion(): Promise<number> {
    return Number((await this.redis.get(this.convergedKey)) ?? 0);
  }
}

/** The in-memory twin of ApplyStore (test/state/twins.test.ts holds both to one contract). */
export class MemoryApplyStore {
  private readonly outcomeMaps = new Map<number, Map<string, string>>();
  private readonly statuses = new Map<number, string>();
  private converged = 0;

  record(version: number, outcomes: ReadonlyMap<string, ActionOutcome>): Promise<void> {
    const m = this.outcomeMaps.get(version) ?? new Map<string, string>();
    for (const [id, o] of outcomes) m.set(id, JSON.stringify(o));
    if (outcomes.size) this.outcomeMaps.set(version, m);
    return Promise.resolve();
  }
  outcomes(version: number): Promise<Map<string, ActionOutcome>> {
    const m = this.outcomeMaps.get(version) ?? new Map<string, string>();
    return Promise.resolve(new Map([...m].map(([id, v]) => [id, JSON.parse(v) as ActionOutcome])));
  }
  setStatus(version: number, status: Omit<ApplyStatus, 'at'>): Promise<void> {
    this.statuses.set(version, JSON.stringify({ ...status, at: Date.now() }));
    return Promise.resolve();
  }
  status(version: number): Promise<ApplyStatus | undefined> {
    const v = this.statuses.get(version);
    return Promise.resolve(v ? (JSON.parse(v) as ApplyStatus) : undefined);
  }
  markConverged(version: number): Promise<void> {
    this.converged = version;
    return Promise.resolve();
  }
  convergedVersion(): Promise<number> {
    return Promise.resolve(this.converged);
  }
}
