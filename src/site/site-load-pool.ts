// Parses site files in worker threads, so a large upload (up to XSM_MAX_SITE_BYTES) never stalls the event
// loop the API — and, in one process, the control worker — answers on: a 30 MB file takes seconds to
// validate, and `/api/health`, job progress and heartbeats must not wait for it. A small pool
// (XSM_SITE_PARSE_THREADS, default 2; 0 parses on the event loop, as tests of the baseline do) with a
// queue; a worker that dies (out of its heap on a hostile file) fails only its own task and is replaced.

import { envWholeNumber } from '../lib/env.ts';
import { Worker } from 'node:worker_threads';
import { loadSite } from './parse.ts';
import type { LoadResult, SiteIssue } from './model.ts';

/** What validating a file answers: the verdict and every located issue, without the site itself. */
export interface Verdict {
  ok: boolean;
  errors: SiteIssue[];
  warnings: SiteIssue[];
}

/** Default and largest site file the API accepts, in bytes. */
export const DEFAULT_MAX_SITE_BYTES = 32 * 1024 * 1024;
export const LARGEST_MAX_SITE_BYTES = 64 * 1024 * 1024;

export interface SiteInputLimits {
  /** Largest XML body, bytes. */
  maxBytes: number;
  /** Worker threads parsing site files; 0: on the event loop. */
  threads: number;
  /** Parses one identity may have running at once; more get 429. */
  perToken: number;
}

export function siteInputLimitsFromEnv(env: NodeJS.ProcessEnv = process.env): SiteInputLimits {
  return {
    maxBytes: envWholeNumber(env, 'XSM_MAX_SITE_BYTES', DEFAULT_MAX_SITE_BYTES, 1024, LARGEST_MAX_SITE_BYTES),
    threads: envWholeNumber(env, 'XSM_SITE_PARSE_THREADS', 2, 0, 16),
    perToken: envWholeNumber(env, 'XSM_SITE_PARSES_PER_TOKEN', 2, 1, 100),
  };
}

interface Task {
  id: number;
  xml: string;
  file: string;
  keepSite: boolean;
  resolve: (r: LoadResult) => void;
  reject: (e: Error) => void;
}

/** From the sources, a bootstrap that registers tsx in the thread; in the compiled build, the worker itself. */
const WORKER_URL = new URL(
  import.meta.url.endsWith('.ts') ? './site-load-worker.mjs' : './site-load-worker.js',
  import.meta.url,
);

export class SiteLoadPool {
  private readonly idle: Worker[] = [];
  private readonly busy = new Map<Worker, Task>();
  private readonly queue: Task[] = [];
  private workers = 0;
  private nextId = 1;
  private closed = false;

  constructor(
    readonly threads: number,
    /** Heap limit of each worker: a hostile file exhausts its worker, not the API. */
    private readonly heapMiB = 2048,
  ) {}

  /** Parses and validates `xml` as `file`, in a worker thread (or inline when the pool has no threads). */
  load(xml: string, file: string): Promise<LoadResult> {
    return this.run(xml, file, true);
  }

  /** Only whether `xml` is a valid site file, and its located errors and warnings. */
  async validate(xml: string, file: string): Promise<Verdict> {
    const r = await this.run(xml, file, false);
    return { ok: r.ok, errors: r.ok ? [] : r.errors, warnings: r.warnings };
  }

  private run(xml: string, file: string, keepSite: boolean): Promise<LoadResult> {
    if (this.threads === 0) return Promise.resolve(loadSite(xml, file));
    if (this.closed) return Promise.reject(new Error('the site-load pool is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, xml, file, keepSite, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.queue.length) {
      let w = this.idle.pop();
      if (!w && this.workers < this.threads) w = this.spawn();
      if (!w) return;
      const task = this.queue.shift()!;
      this.busy.set(w, task);
      w.postMessage({ id: task.id, xml: task.xml, file: task.file, keepSite: task.keepSite });
    }
  }

  private spawn(): Worker {
    this.workers++;
    const w = new Worker(WORKER_URL, { resourceLimits: { maxOldGenerationSizeMb: this.heapMiB } });
    // The pool never keeps a process alive by itself: the API server does, and close() ends the workers.
    w.unref();
    w.on('message', (m: { id: number; result?: LoadResult; error?: string }) => {
      const task = this.busy.get(w);
      this.busy.delete(w);
      if (task) {
        if (m.error !== undefined) task.reject(new Error(m.error));
        else task.resolve(m.result!);
      }
      this.idle.push(w);
      this.dispatch();
    });
    const lost = (why: string) => {
      const task = this.busy.get(w);
      this.busy.delete(w);
      const i = this.idle.indexOf(w);
      if (i >= 0) this.idle.splice(i, 1);
      this.workers--;
      task?.reject(new Error(`the site file could not be parsed: ${why}`));
      if (!this.closed) this.dispatch();
    };
    w.on('error', (e) => lost(e.message));
    w.on('exit', (code) => {
      if (this.busy.has(w) || this.idle.includes(w)) lost(`its parser stopped (exit ${code})`);
    });
    return w;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.queue.splice(0)) t.reject(new Error('the API is shutting down'));
    const all = [...this.idle, ...this.busy.keys()];
    this.idle.length = 0;
    await Promise.all(all.map((w) => w.terminate()));
  }
}
