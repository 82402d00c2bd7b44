// GET /api/vms built in a worker thread (vm-list-worker.ts), so the API's event loop only keeps and sends
// bytes. Measured at 10,000 VMs under 100 polling connections, the build on the event loop (Redis reads and
// parsing 60-90 ms, stringifying 140-250 ms in slices, once a second) held the loop's p99 delay at 40-200 ms
// when the site was steady and past 500 ms during an apply: that was the list's p99.
//
// One build runs at a time. A request that arrives while one runs gets the next, which starts after it
// arrived (never the one running, which may have read Redis before its request came); every request
// arriving meanwhile shares that next build.

import { Worker } from 'node:worker_threads';
import type { RedisConfig } from '../lib/redis.ts';
import type { EncodedJson } from './json-snapshot.ts';

/** From the sources, a bootstrap that registers tsx in the thread; in the compiled build, the worker itself. */
const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './vm-list-worker.mjs' : './vm-list-worker.js',
  import.meta.url,
);

type Answer = { id: number; body: Uint8Array; gzip: Uint8Array; hash: string } | { id: number; error: string };

interface Pending {
  done: Promise<EncodedJson>;
  resolve: (e: EncodedJson) => void;
  reject: (e: Error) => void;
}

export class VmListThread {
  private worker: Worker | undefined;
  private running: (Pending & { id: number }) | undefined;
  private next: Pending | undefined;
  private nextId = 1;
  private closed = false;

  constructor(
    private readonly redis: RedisConfig,
    /** Heap limit of the thread: 10,000 VMs need about 100 MiB. */
    private readonly heapMiB = 1024,
  ) {}

  /**
   * Starts the thread now rather than at the first request: loading it takes about a second (longer from the
   * TypeScript sources, or on a busy machine), which the first pollers would otherwise wait.
   */
  start(): void {
    if (!this.closed) this.worker ??= this.spawn();
  }

  /** The list as of a build that starts after this call: its JSON, hash and gzip. */
  build(): Promise<EncodedJson> {
    if (this.closed) return Promise.reject(new Error('the API is shutting down'));
    if (!this.next) {
      let resolve!: (e: EncodedJson) => void;
      let reject!: (e: Error) => void;
      const done = new Promise<EncodedJson>((res, rej) => ((resolve = res), (reject = rej)));
      this.next = { done, resolve, reject };
    }
    const { done } = this.next;
    this.dispatch();
    return done;
  }

  private dispatch(): void {
    if (this.running || !this.next) return;
    this.running = { ...this.next, id: this.nextId++ };
    this.next = undefined;
    this.worker ??= this.spawn();
    this.worker.postMessage({ id: this.running.id });
  }

  private spawn(): Worker {
    const w = new Worker(WORKER_URL, {
      workerData: { redis: this.redis },
      resourceLimits: { maxOldGenerationSizeMb: this.heapMiB },
    });
    // The API server keeps the process alive, not this thread; close() ends it.
    w.unref();
    w.on('message', (m: Answer) => {
      const task = this.running;
      if (!task || task.id !== m.id) return;
      this.running = undefined;
      if ('error' in m) task.reject(new Error(`the VM list could not be built: ${m.error}`));
      else {
        const body = Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength);
        const gzip = Buffer.from(m.gzip.buffer, m.gzip.byteOffset, m.gzip.byteLength);
        task.resolve({ body, gzip, hash: m.hash });
      }
      this.dispatch();
    });
    const lost = (why: string) => {
      if (this.worker !== w) return;
      this.worker = undefined;
      const task = this.running;
      this.running = undefined;
      task?.reject(new Error(`the VM list could not be built: its thread stopped (${why}); the next request retries`));
      if (!this.closed) this.dispatch();
    };
    w.on('error', (e) => lost(e.message));
    w.on('exit', (code) => lost(`exit ${code}`));
    return w;
  }

  async close(): Promise<void> {
    this.closed = true;
    const stopping = new Error('the API is shutting down');
    this.next?.reject(stopping);
    this.next = undefined;
    const w = this.worker;
    this.worker = undefined;
    this.running?.reject(stopping);
    this.running = undefined;
    await w?.terminate();
  }
}
