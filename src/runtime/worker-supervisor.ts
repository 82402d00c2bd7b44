// Keeps one BullMQ worker of a queue taking jobs across Redis outages and Sentinel failovers. BullMQ 6.7
// workers do not always come back by themselves: after an outage longer than their blocking timeout the
// blocking connection can stay parked in "reconnecting" (no job is taken until the process restarts), its
// reconnect backoff grows to 20 s, and a worker closed right after Redis returns can hang in close().
// So when the process's Redis connection is ready again after a loss, the supervisor starts a fresh worker
// with the same processor and options, and retires the old one: once it had time to reconnect it is asked
// to close, its running jobs finish under it (their locks still renewed), then it closes; a close that
// hangs is forced, and when a forced close hangs too the worker is abandoned: its ioredis clients ended and its
// timers stopped directly, so neither the work nor the process's exit waits on it. A worker given a
// connection to share (a process hosting thousands of simulated agents) is forced and abandoned by ending only
// its own blocking connection: BullMQ's disconnect() would end the shared one, and every other worker of the
// process would then fail each command, for good ("Connection is closed"), and take no job again.

import { Worker, type Job, type WorkerOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { coalesceWrites } from '../lib/redis.ts';
import type { Logger } from '../lib/log.ts';
import { errorMessage } from '../lib/errors.ts';
import { TakeoverSafeWorker } from './takeover-safe-worker.ts';
import type { RedisHealth } from './redis-health.ts';

/** What a supervised worker is made of; `setup` attaches listeners (metrics, logs) to each worker made. */
export interface SupervisedWorker {
  queue: string;
  processor: (job: Job, token?: string) => Promise<unknown>;
  options: WorkerOptions;
  /** The process's Redis health: its 'back' event replaces the worker. */
  health: RedisHealth;
  log: Logger;
  setup?: (worker: Worker) => void;
  /** How long a retiring worker may take to close once its jobs ended before it is forced (default 5 s). */
  closeTimeoutMs?: number;
  /**
   * How long a replaced worker is left to reconnect before it is asked to close (default 2.5 s: more than
   * the longest reconnect delay); closing one whose connections are still reconnecting can hang.
   */
  settleMs?: number;
  /** Makes the worker (tests hand in a worker that hangs); default: a BullMQ Worker. */
  make?: (queue: string, processor: SupervisedWorker['processor'], options: WorkerOptions) => Worker;
}

/** The part of a worker the supervisor retires: close, forced close, dropping its connections. */
type Closable = Pick<Worker, 'close' | 'disconnect' | 'getBackend'>;

/** An ioredis client as BullMQ holds it: `disconnect()` is synchronous and cancels any pending reconnect. */
interface RawClient {
  manuallyClosing?: boolean;
  disconnect(reconnect?: boolean): void;
}

/** The parts of a BullMQ 6.7 worker that hold timers, as its (private) fields name them. */
interface WorkerTimers {
  lockManager?: { close?: () => Promise<void> };
  stalledCheckStopper?: () => void;
}

/**
 * Lets go of a worker whose close() and disconnect() both hung (BullMQ 6.7 after an outage: its main loop
 * waits on a connection that never becomes ready, so close() never gets to its cleanup). Ends its ioredis
 * clients (the command and the blocking one) and stops its own timers (lock renewal, stalled checker): left
 * running, any of them keeps the process alive forever. BullMQ reaches these only through promises that
 * never settle in that state, so they are read from its fields; a field a later BullMQ renames is skipped.
 * With `keepSharedConnection` the command connection, which other workers share, is left open.
 * Returns how many clients it ended.
 */
export function abandonWorker(worker: Pick<Worker, 'getBackend'>, keepSharedConnection = false): number {
  const timers = worker as unknown as WorkerTimers;
  void timers.lockManager?.close?.().catch(() => undefined);
  timers.stalledCheckStopper?.();
  let backend: unknown;
  try {
    backend = worker.getBackend();
  } catch {
    return 0;
  }
  const { connection, blockingConnection } = (backend ?? {}) as { connection?: unknown; blockingConnection?: unknown };
  let ended = 0;
  for (const conn of keepSharedConnection ? [blockingConnection] : [connection, blockingConnection]) {
    const client = (conn as { _client?: RawClient } | undefined)?._client;
    if (!client || typeof client.disconnect !== 'function' || client.manuallyClosing) continue;
    client.disconnect(false);
    ended++;
  }
  return ended;
}

/**
 * True when the worker was handed a connection (an ioredis client, maybe shared with other workers) rather
 * than connection options: BullMQ then uses that client for its commands and owns only its blocking one.
 */
export function sharesConnection(options: WorkerOptions): boolean {
  const connection = options.connection as { duplicate?: unknown } | undefined;
  return typeof connection?.duplicate === 'function';
}

/**
 * Has the worker's command connection send the commands of one turn of the event loop in one socket write,
 * in order (coalesceWrites): its concurrent jobs' commands (fetching, journal writes, completions) came to
 * about two per write in the apply benchmark. Reached through the backend's raw client, BullMQ's
 * Redis-specific escape hatch; a worker without one (a test's fake) is left as it is.
 */
function coalesceWorkerWrites(worker: Pick<Worker, 'getBackend'>): void {
  try {
    const client = (worker.getBackend() as unknown as { client?: Promise<Redis> }).client;
    void client?.then(coalesceWrites, () => undefined);
  } catch {
    // No backend to reach: nothing to coalesce.
  }
}

/**
 * Drops a worker's blocking connection only (what a forced close may do to a worker that shares its command
 * connection). Resolves once it is dropped; never rejects.
 */
async function dropBlockingConnection(worker: Pick<Worker, 'getBackend'>): Promise<void> {
  try {
    const backend = worker.getBackend() as unknown as { disconnectBlocking?: (wait?: boolean) => Promise<void> };
    await backend.disconnectBlocking?.(false);
  } catch {
    // Already closed or never connected: nothing left to drop.
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Resolves true when `p` settles within `ms`, false otherwise. */
const within = (p: Promise<unknown>, ms: number): Promise<boolean> =>
  Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    sleep(ms).then(() => false),
  ]);

export class WorkerSupervisor {
  private current: Worker;
  private inflight = new Map<Worker, number>();
  private readonly retiring = new Set<Promise<void>>();
  private closed = false;
  /** How many times the worker was replaced (each time Redis came back). */
  replacements = 0;
  private readonly onBack = (downMs: number) => void this.replace(`Redis back after ${downMs} ms`);
  /** The workers are handed a connection they share with others: forcing one must never end it. */
  private readonly shared: boolean;

  constructor(private readonly spec: SupervisedWorker) {
    this.shared = sharesConnection(spec.options);
    this.current = this.start();
    spec.health.on('back', this.onBack);
  }

  /** Workers replaced but not yet closed (or given up on). */
  get retiringCount(): number {
    return this.retiring.size;
  }

  /** The worker taking jobs now. */
  get worker(): Worker {
    return this.current;
  }

  waitUntilReady(): Promise<void> {
    return this.current.waitUntilReady();
  }

  private start(): Worker {
    const { queue, processor, options, log } = this.spec;
    const make = this.spec.make ?? ((q, p, o) => new TakeoverSafeWorker(q, p, o));
    // Counts the jobs each worker is running, so a retiring one is forced only once it has none.
    const counted = (job: Job, token?: string): Promise<unknown> => {
      this.inflight.set(w, (this.inflight.get(w) ?? 0) + 1);
      return processor(job, token).finally(() => this.inflight.set(w, (this.inflight.get(w) ?? 1) - 1));
    };
    const w = make(queue, counted, options);
    this.inflight.set(w, 0);
    // During an outage every reconnect attempt is an error: RedisHealth says it once; others are said here.
    w.on('error', (e) => {
      if (!this.spec.health.down) log.error('worker error', { queue, error: errorMessage(e) });
    });
    this.spec.setup?.(w);
    // A connection it was handed is its giver's to shape.
    if (!sharesConnection(options)) coalesceWorkerWrites(w);
    return w;
  }

  /** Starts a fresh worker and retires the one before it (in the background). */
  async replace(reason: string): Promise<void> {
    if (this.closed) return;
    const old = this.current;
    this.current = this.start();
    this.replacements++;
    this.spec.log.warn('worker replaced', { queue: this.spec.queue, reason });
    const done = sleep(this.spec.settleMs ?? 2500)
      .then(() => this.retire(old))
      .finally(() => this.retiring.delete(done));
    this.retiring.add(done);
    await done;
  }

  private async retire(old: Closable & Worker): Promise<void> {
    const { queue, log } = this.spec;
    const timeout = this.spec.closeTimeoutMs ?? 5000;
    const closing = old.close();
    // Its running jobs end under it, however long a migration takes; no new job is taken meanwhile.
    while ((this.inflight.get(old) ?? 0) > 0 && !(await within(closing, 200)));
    if (!(await within(closing, timeout))) {
      log.warn('a retired worker did not close; forcing it', { queue, afterMs: timeout });
      // close(true) on a worker already closing returns the same pending promise: drop its connections
      // (only its blocking one when it shares the other with the process's other workers).
      const forced = this.shared ? dropBlockingConnection(old) : old.disconnect();
      if (!(await within(forced, timeout))) {
        const dropped = abandonWorker(old, this.shared);
        log.error('a retired worker could not be closed; abandoned it (Redis clients ended, timers stopped)', {
          queue,
          endedClients: dropped,
        });
      }
    }
    this.inflight.delete(old);
  }

  /** Closes the worker (waiting for its jobs unless `force`) and every one still retiring. */
  async close(force = false): Promise<void> {
    this.closed = true;
    this.spec.health.off('back', this.onBack);
    const w = this.current;
    await within(w.waitUntilReady(), this.spec.closeTimeoutMs ?? 5000);
    if (force) {
      if (!(await within(w.close(true), this.spec.closeTimeoutMs ?? 5000))) {
        const dropped = abandonWorker(w, this.shared);
        this.spec.log.error('the worker could not be closed; abandoned it (Redis clients ended, timers stopped)', {
          queue: this.spec.queue,
          endedClients: dropped,
        });
      }
    } else await this.retire(w);
    await Promise.all(this.retiring);
  }
}
