// XSM's queue layout as a workload any BullMQ engine can run, for benchmarks that compare engines (BullMQ 5
// or 6 on Redis, BullMQ 6 on PostgreSQL): each flow is a `wave` parent on the control queue whose children
// are spread over per-host queues (`host-hN`), with XSM's own job options, as src/jobs/apply.ts enqueues
// them; processors do nothing but count. Every job carries an idempotency key, so a run can say that every
// job completed exactly once (or how many are missing and how many ran twice).

import { actionJobOptions, CONTROL_QUEUE, hostQueueName } from '../src/runtime/queues.ts';

interface LayoutJob {
  id?: string;
  name: string;
  data: { key: string; [field: string]: unknown };
  timestamp: number;
}
interface Closable {
  close(): Promise<void>;
  waitUntilReady(): Promise<unknown>;
}
interface WorkerLike extends Closable {
  on(event: 'completed', fn: (job: LayoutJob) => void): unknown;
  on(event: 'error' | 'failed', fn: (...args: unknown[]) => void): unknown;
}
interface FlowNode {
  name: string;
  queueName: string;
  data: { key: string; [field: string]: unknown };
  opts: Record<string, unknown>;
  children?: FlowNode[];
}

/** The three classes of one BullMQ engine, and the options (connection, prefix) all of them get. */
export interface QueueKit {
  label: string;
  Worker: new (name: string, processor: (job: LayoutJob) => Promise<unknown>, opts: object) => WorkerLike;
  FlowProducer: new (opts: object) => Closable & { add(flow: FlowNode): Promise<unknown> };
  options: object;
}

export interface LayoutShape {
  hosts: number;
  /** Children per wave parent. */
  children: number;
  /** Jobs each host queue's worker runs at once (XSM's agent default is 4). */
  concurrency: number;
  /** Carried by every child besides its key (XSM's action job data, to weigh what a payload costs). */
  payload?: object;
}

/** What one run saw. Latency is from a job's enqueue (job.timestamp) to its worker reporting it completed. */
export interface LayoutResult {
  jobs: number;
  seconds: number;
  jobsPerSec: number;
  p50: number;
  p99: number;
  missing: number;
  /** Jobs whose processor ran more than once (at-least-once delivery showing). */
  duplicated: number;
  /** Adds that failed and were retried (same job ids, so a retry never enqueues twice). */
  addRetries: number;
  /** Completion times (ms since the run started), for stall analysis. */
  completions: number[];
  /** CPU time (user + system) this process spent per job: producer, workers and client libraries. */
  clientCpuMsPerJob: number;
}

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function flow(run: string, f: number, shape: LayoutShape): FlowNode {
  return {
    name: 'wave',
    queueName: CONTROL_QUEUE,
    data: { key: `${run}-f${f}` },
    opts: { jobId: `${run}-f${f}-wave` },
    children: Array.from({ length: shape.children }, (_, c) => ({
      name: 'create',
      queueName: hostQueueName(`h${(f * shape.children + c) % shape.hosts}`),
      data: { ...shape.payload, key: `${run}-f${f}-c${c}` },
      opts: { ...actionJobOptions, jobId: `${run}-f${f}-c${c}` },
    })),
  };
}

/** A running layout: workers on every queue, a producer, and the counts they keep. */
export class LayoutRun {
  private readonly runs = new Map<string, number>();
  private readonly latencies: number[] = [];
  readonly completions: number[] = [];
  private readonly workers: WorkerLike[] = [];
  private readonly producer: InstanceType<QueueKit['FlowProducer']>;
  private readonly expected = new Set<string>();
  private addRetries = 0;
  readonly errors: string[] = [];
  private t0 = Date.now();
  private cpu0 = process.cpuUsage();

  constructor(
    private readonly kit: QueueKit,
    private readonly shape: LayoutShape,
    private readonly run = `r${Math.random().toString(36).slice(2, 8)}`,
  ) {
    this.producer = new kit.FlowProducer({ ...kit.options });
    const names = [CONTROL_QUEUE, ...Array.from({ length: shape.hosts }, (_, h) => hostQueueName(`h${h}`))];
    for (const name of names) {
      const w = new kit.Worker(
        name,
        async (job) => {
          this.runs.set(job.data.key, (this.runs.get(job.data.key) ?? 0) + 1);
          return 'ok';
        },
        { ...kit.options, concurrency: name === CONTROL_QUEUE ? 4 : shape.concurrency },
      );
      w.on('completed', (job) => {
        const now = Date.now();
        this.latencies.push(now - job.timestamp);
        this.completions.push(now - this.t0);
      });
      w.on('error', (e) => this.noteError(e));
      this.workers.push(w);
    }
  }

  private noteError(e: unknown): void {
    if (this.errors.length < 1000) this.errors.push(e instanceof Error ? e.message : String(e));
  }

  async ready(): Promise<void> {
    await Promise.all([...this.workers, this.producer].map((c) => c.waitUntilReady()));
    this.t0 = Date.now();
    this.cpu0 = process.cpuUsage();
  }

  /** Adds flow number `f`, retrying on errors (a failover) until it is in; job ids make retries harmless. */
  async addFlow(f: number): Promise<void> {
    const node = flow(this.run, f, this.shape);
    this.expected.add(node.data.key);
    for (const c of node.children!) this.expected.add(c.data.key);
    for (;;) {
      try {
        await this.producer.add(node);
        return;
      } catch (e) {
        this.addRetries++;
        this.noteError(e);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Every expected job has run at least once. */
  done(): boolean {
    for (const k of this.expected) if (!this.runs.has(k)) return false;
    return true;
  }

  async waitDone(timeoutMs: number): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (!this.done()) {
      if (Date.now() > end) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  }

  result(): LayoutResult {
    const seconds = (Math.max(...this.completions, 0) || Date.now() - this.t0) / 1000;
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const cpu = process.cpuUsage(this.cpu0);
    let missing = 0;
    let duplicated = 0;
    for (const k of this.expected) {
      const n = this.runs.get(k) ?? 0;
      if (n === 0) missing++;
      if (n > 1) duplicated++;
    }
    return {
      jobs: this.expected.size,
      seconds,
      jobsPerSec: this.expected.size / seconds,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      missing,
      duplicated,
      addRetries: this.addRetries,
      completions: [...this.completions].sort((a, b) => a - b),
      clientCpuMsPerJob: (cpu.user + cpu.system) / 1000 / this.expected.size,
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.workers, this.producer].map((c) => c.close().catch(() => {})));
  }
}

/** Burst: enqueue `flows` waves (at most 16 adds in flight) and wait until every job ran. */
export async function runBurst(
  kit: QueueKit,
  shape: LayoutShape,
  flows: number,
  /** Called once every worker is ready, before the first flow is added (where a caller starts counting). */
  onReady?: () => Promise<void>,
): Promise<LayoutResult> {
  const run = new LayoutRun(kit, shape);
  try {
    await run.ready();
    await onReady?.();
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < flows) await run.addFlow(next++);
      }),
    );
    if (!(await run.waitDone(300_000))) throw new Error(`${kit.label}: not every job ran within 300 s`);
    const result = run.result();
    // Give a late duplicate the chance to show before counting.
    await new Promise((r) => setTimeout(r, 200));
    return { ...run.result(), clientCpuMsPerJob: result.clientCpuMsPerJob };
  } finally {
    await run.close();
  }
}
