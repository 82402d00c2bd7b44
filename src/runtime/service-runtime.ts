// What services need of a process: the stores (the audit log among them) and the control queue to enqueue on.
// The XsmRuntime is one (on Redis and BullMQ); memoryRuntime() is another, all twins, so the services' logic
// (submit and plan, health checks, rebalancing) is tested in milliseconds without Redis. Integration tests
// still run the same services on the real runtime.

import type { JobsOptions } from 'bullmq';
import { memoryStores, type Stores } from '../state/stores.ts';

/** What services do with a queue: add a job under an id (a second add of an id is a no-op), look an id up. */
export interface JobSink {
  add(name: string, data: unknown, opts?: JobsOptions): Promise<unknown>;
  getJob(id: string): Promise<unknown>;
}

export interface ServiceRuntime extends Stores {
  control(): JobSink;
}

/** The queue's twin: keeps what was added, by job id, as BullMQ does (an id is added once). */
export class MemoryJobSink implements JobSink {
  readonly jobs = new Map<string, { name: string; data: unknown; opts: JobsOptions }>();
  private nextId = 1;
  add(name: string, data: unknown, opts: JobsOptions = {}): Promise<unknown> {
    const id = opts.jobId ?? String(this.nextId++);
    if (!this.jobs.has(id)) this.jobs.set(id, { name, data: structuredClone(data), opts });
    return Promise.resolve({ id });
  }
  getJob(id: string): Promise<unknown> {
    const j = this.jobs.get(id);
    return Promise.resolve(j ? { id, ...j } : undefined);
  }
}

export interface MemoryRuntime extends ServiceRuntime {
  controlQueue: MemoryJobSink;
}

/** A runtime made of twins: empty stores (read its audit log with `audit.query()`), a queue that keeps its jobs. */
export function memoryRuntime(now: () => number = Date.now): MemoryRuntime {
  const controlQueue = new MemoryJobSink();
  return {
    ...memoryStores(now),
    controlQueue,
    control: () => controlQueue,
  };
}
