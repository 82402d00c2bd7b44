// What the simulated agents of a benchmark said about Redis outages, counted instead of discarded: a process
// hosting thousands of agents would print thousands of lines per outage, so each kind of warning or error is
// counted and its first lines are kept. The agent process sends a snapshot to the benchmark every few
// seconds (bench/apply.ts --child), with the state of its workers' connections, so a run that stalls says
// whether the workers were replaced, parked reconnecting, or lost their shared connection.

import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { createLogger, type Logger } from '../src/lib/log.ts';
import type { WorkerSupervisor } from '../src/runtime/worker-supervisor.ts';
import { MemorySimStore, type SimHostState } from '../src/drivers/hypervisor/simulated.ts';

/** The simulator's store, counting the changes to its hosts: the agents' progress, seen from outside Redis. */
export class CountingSimStore extends MemorySimStore {
  changes = 0;
  override async update<T>(host: string, fn: (s: SimHostState) => T): Promise<T> {
    const out = await super.update(host, fn);
    this.changes++;
    return out;
  }
}

/** One agent process's tally; the benchmark sums them over its processes. */
export interface AgentOutageSnapshot {
  /** Warnings and errors said, by message (`Redis unreachable; ...`, `worker replaced`, ...). */
  said: Record<string, number>;
  /** The first lines said (at most a few per message), as logged. */
  firstLines: string[];
  /** Outages of the process's own connection (its RedisHealth: each one replaces every worker). */
  outages: number;
  /** Workers replaced by their supervisors, and replaced ones not yet closed. */
  replacements: number;
  retiring: number;
  /** The workers taking jobs now, by the ioredis status of their blocking connection. */
  blocking: Record<string, number>;
  /** The connection the workers share for their other commands, when they share one. */
  shared?: string;
}

const FIRST_LINES_PER_MESSAGE = 3;

export class AgentOutageTally {
  private readonly said = new Map<string, number>();
  private readonly firstLines: string[] = [];
  /** Counts every warning and error; keeps the first few lines of each kind, with `base` fields. */
  readonly log: Logger;

  constructor(base: Record<string, string | number> = {}) {
    this.log = createLogger(base, 'warn', (line) => {
      const msg = (JSON.parse(line) as { msg: string }).msg;
      const n = (this.said.get(msg) ?? 0) + 1;
      this.said.set(msg, n);
      if (n <= FIRST_LINES_PER_MESSAGE) this.firstLines.push(line);
    });
  }

  snapshot(
    supervisors: WorkerSupervisor[],
    health: { outages: number },
    shared?: Pick<Redis, 'status'>,
  ): AgentOutageSnapshot {
    const blocking: Record<string, number> = {};
    for (const s of supervisors) {
      const status = blockingStatus(s.worker);
      blocking[status] = (blocking[status] ?? 0) + 1;
    }
    return {
      said: Object.fromEntries(this.said),
      firstLines: [...this.firstLines],
      outages: health.outages,
      replacements: supervisors.reduce((n, s) => n + s.replacements, 0),
      retiring: supervisors.reduce((n, s) => n + s.retiringCount, 0),
      blocking,
      ...(shared ? { shared: shared.status } : {}),
    };
  }
}

/** The ioredis status of a worker's blocking connection (BullMQ keeps it in a private field: read, not used). */
function blockingStatus(worker: Worker): string {
  try {
    const backend = worker.getBackend() as unknown as { blockingConnection?: { _client?: { status?: string } } };
    return backend.blockingConnection?._client?.status ?? 'not connected yet';
  } catch {
    return 'no backend';
  }
}

/** Sums the processes' snapshots (first lines: each process's, in order). */
export function sumOutages(snaps: AgentOutageSnapshot[]): AgentOutageSnapshot {
  const add = (into: Record<string, number>, from: Record<string, number>) => {
    for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
  };
  const out: AgentOutageSnapshot = { said: {}, firstLines: [], outages: 0, replacements: 0, retiring: 0, blocking: {} };
  const shared: string[] = [];
  for (const s of snaps) {
    add(out.said, s.said);
    add(out.blocking, s.blocking);
    out.firstLines.push(...s.firstLines);
    out.outages += s.outages;
    out.replacements += s.replacements;
    out.retiring += s.retiring;
    if (s.shared) shared.push(s.shared);
  }
  if (shared.length) out.shared = shared.join(' / ');
  return out;
}

/** One line: outages, workers replaced and retiring, blocking connections by status, messages by count. */
export function describeOutages(s: AgentOutageSnapshot): string {
  const counts = (r: Record<string, number>) =>
    Object.entries(r)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
  return (
    `process connection outages ${s.outages}, workers replaced ${s.replacements} (${s.retiring} still retiring); ` +
    `blocking connections: ${counts(s.blocking) || 'none'}` +
    (s.shared ? `; shared connections: ${s.shared}` : '') +
    (Object.keys(s.said).length ? `; said: ${counts(s.said)}` : '; said nothing')
  );
}
