// Counters and histograms of what XSM did — jobs by kind and outcome, migrations, fences, deploys, submits,
// job and step durations, plan time, time to converge — kept in Redis, because the process that does the
// work (a host agent, a control worker) is rarely the one Prometheus scrapes (any API host). Each event is
// added up in the process and written every FLUSH_MS as one pipeline of HINCRBYs (one per field that
// changed, however many events: a create's six steps used to cost 35 Redis commands, a third of an apply's);
// recording never fails the work it measures, and at most FLUSH_MS of counts are lost if the process dies.
// /metrics reads them back as Prometheus counters and histograms (src/api/monitoring.ts).

import type { Redis } from 'ioredis';

export type Labels = Record<string, string>;

/** Bucket upper bounds (seconds) per histogram: jobs and steps run from milliseconds to half an hour. */
export const BUCKETS: Record<string, number[]> = {
  xsm_job_duration_seconds: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
  xsm_step_duration_seconds: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
  xsm_plan_duration_seconds: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  xsm_converge_duration_seconds: [1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600],
};

export const COUNTERS = {
  xsm_jobs_finished_total:
    'Jobs that ended, by queue kind (control, host, deploy), job kind and outcome (completed, failed)',
  xsm_migrations_total: 'VM migrations that ended, by mode (live, cold) and outcome (done, failed)',
  xsm_fences_total: 'Hosts fenced by failover, by outcome (off, lease, self, failed, held-back)',
  xsm_deploys_total: 'Host deployments that ended, by outcome (done, failed)',
  xsm_submits_total:
    'Site changes asked for, by kind (submit, edit, rebalance) and outcome (stored, unchanged, refused)',
} as const;

export const HISTOGRAM_HELP: Record<string, string> = {
  xsm_job_duration_seconds: 'Time a job ran, from a worker taking it to it ending, by queue kind and job kind',
  xsm_step_duration_seconds: 'Time one durable step of a workflow ran, by workflow and step',
  xsm_plan_duration_seconds: 'Time to plan a submitted site version against the current one and observed state',
  xsm_converge_duration_seconds: 'Time from a version being stored to its apply converging',
};

const canonical = (labels: Labels) =>
  JSON.stringify(Object.fromEntries(Object.entries(labels).sort(([a], [b]) => a.localeCompare(b))));

/**
 * The field a label set is stored under, remembered: an agent records every step of every job under a few
 * dozen label sets, and sorting and serialising each one again (localeCompare) was a few percent of its CPU.
 * Bounded: a process with ever new label values forgets them all and starts again.
 */
const keys = new Map<string, string>();
function key(labels: Labels): string {
  // As given (its keys in any order); the stored field has them sorted.
  const lookup = JSON.stringify(labels);
  let k = keys.get(lookup);
  if (k === undefined) {
    if (keys.size >= 10_000) keys.clear();
    keys.set(lookup, (k = canonical(labels)));
  }
  return k;
}

/** One histogram series' fields: `labels|le=B` per bucket bound (the last one +Inf), `labels|sum`, `labels|count`. */
interface SeriesFields {
  le: string[];
  sum: string;
  count: string;
}

/**
 * The fields of a histogram's label set, made once: building three field strings per observation (and
 * hashing each fresh string again in the pending map) was most of what recording a step cost an agent.
 * Bounded like `keys`.
 */
const seriesOf = new Map<string, Map<string, SeriesFields>>();
function seriesFields(name: string, buckets: readonly number[], labels: Labels): SeriesFields {
  let byLabels = seriesOf.get(name);
  if (!byLabels) seriesOf.set(name, (byLabels = new Map()));
  const lookup = JSON.stringify(labels);
  let f = byLabels.get(lookup);
  if (f === undefined) {
    if (byLabels.size >= 10_000) byLabels.clear();
    const l = key(labels);
    f = { le: [...buckets, Infinity].map((b) => `${l}|le=${b}`), sum: `${l}|sum`, count: `${l}|count` };
    byLabels.set(lookup, f);
  }
  return f;
}

/** The index of the bucket `seconds` falls in: the first bound it does not exceed, else the +Inf one. */
function bucketIndex(buckets: readonly number[], seconds: number): number {
  const i = buckets.findIndex((b) => seconds <= b);
  return i < 0 ? buckets.length : i;
}

/** How long events wait in the process before they are written: short against a scrape interval. */
export const FLUSH_MS = 250;

export class EventMetrics {
  /** Increments not yet written: Redis hash -> field -> amount (integer or float by field). */
  private pending = new Map<string, Map<string, number>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private add(hash: string, field: string, by: number): void {
    let h = this.pending.get(hash);
    if (!h) this.pending.set(hash, (h = new Map()));
    h.set(field, (h.get(field) ?? 0) + by);
    // Unref'd: pending metrics never keep a finished process alive; close() flushes them.
    this.timer ??= setTimeout(() => void this.flush(), FLUSH_MS).unref();
  }

  /** Writes what was recorded so far in one round trip; a Redis error drops it (metrics never fail work). */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    const p = this.redis.pipeline();
    for (const [hash, fields] of batch)
      for (const [field, by] of fields)
        // A histogram's sum is a float field: HINCRBY on it would fail even when the amount is whole.
        if (field.endsWith('|sum')) p.hincrbyfloat(hash, field, by);
        else p.hincrby(hash, field, by);
    await p.exec().catch(() => undefined);
  }

  /** Hash names by metric name, made once (the pending map then hashes the same strings each time). */
  private readonly hashNames = { counter: new Map<string, string>(), histogram: new Map<string, string>() };
  private hashName(kind: 'counter' | 'histogram', name: string): string {
    let h = this.hashNames[kind].get(name);
    if (h === undefined) this.hashNames[kind].set(name, (h = `${this.prefix}:metrics:${kind}:${name}`));
    return h;
  }
  private counterKey(name: string) {
    return this.hashName('counter', name);
  }
  private histogramKey(name: string) {
    return this.hashName('histogram', name);
  }

  /** Adds to a counter; a Redis error is swallowed: the work being counted has happened either way. */
  count(name: keyof typeof COUNTERS, labels: Labels, by = 1): void {
    this.add(this.counterKey(name), key(labels), by);
  }

  /** Records one observation (seconds) in its bucket, the sum and the count. */
  observe(name: string, labels: Labels, seconds: number): void {
    const buckets = BUCKETS[name];
    if (!buckets || !Number.isFinite(seconds)) return;
    const f = seriesFields(name, buckets, labels);
    const hash = this.histogramKey(name);
    this.add(hash, f.le[bucketIndex(buckets, seconds)]!, 1);
    this.add(hash, f.sum, seconds);
    this.add(hash, f.count, 1);
  }

  async counter(name: string): Promise<{ labels: Labels; value: number }[]> {
    const h = await this.redis.hgetall(this.counterKey(name));
    return Object.entries(h).map(([l, v]) => ({ labels: JSON.parse(l) as Labels, value: Number(v) }));
  }

  /** Per label set: cumulative bucket counts (Prometheus `le`), sum and count. */
  async histogram(name: string): Promise<HistogramSeries[]> {
    return histogramFromFields(name, await this.redis.hgetall(this.histogramKey(name)));
  }
}

export interface HistogramSeries {
  labels: Labels;
  buckets: [number, number][];
  sum: number;
  count: number;
}

/** A histogram's stored fields (`labels|le=B`, `labels|sum`, `labels|count`) as cumulative series. */
function histogramFromFields(name: string, h: Record<string, string>): HistogramSeries[] {
  const bounds = [...(BUCKETS[name] ?? []), Infinity];
  const by = new Map<string, { raw: Map<number, number>; sum: number; count: number }>();
  for (const [field, v] of Object.entries(h)) {
    const bar = field.lastIndexOf('|');
    const [l, what] = [field.slice(0, bar), field.slice(bar + 1)];
    const e = by.get(l) ?? { raw: new Map(), sum: 0, count: 0 };
    if (what === 'sum') e.sum = Number(v);
    else if (what === 'count') e.count = Number(v);
    else e.raw.set(Number(what.slice(3)), Number(v));
    by.set(l, e);
  }
  return [...by].map(([l, e]) => {
    let running = 0;
    const buckets = bounds.map((b): [number, number] => [b, (running += e.raw.get(b) ?? 0)]);
    return { labels: JSON.parse(l) as Labels, buckets, sum: e.sum, count: e.count };
  });
}

/** The in-memory twin of EventMetrics: the same fields, kept in maps. */
export class MemoryEventMetrics {
  private readonly hashes = new Map<string, Map<string, number>>();
  private add(hash: string, field: string, by: number): void {
    const h = this.hashes.get(hash) ?? new Map<string, number>();
    h.set(field, (h.get(field) ?? 0) + by);
    this.hashes.set(hash, h);
  }
  private fields(hash: string): Record<string, string> {
    return Object.fromEntries([...(this.hashes.get(hash) ?? [])].map(([k, v]) => [k, String(v)]));
  }
  count(name: keyof typeof COUNTERS, labels: Labels, by = 1): void {
    this.add(`counter:${name}`, key(labels), by);
  }
  flush(): Promise<void> {
    return Promise.resolve();
  }
  observe(name: string, labels: Labels, seconds: number): void {
    const buckets = BUCKETS[name];
    if (!buckets || !Number.isFinite(seconds)) return;
    const l = key(labels);
    this.add(`histogram:${name}`, `${l}|le=${buckets.find((b) => seconds <= b) ?? Infinity}`, 1);
    this.add(`histogram:${name}`, `${l}|sum`, seconds);
    this.add(`histogram:${name}`, `${l}|count`, 1);
  }
  counter(name: string): Promise<{ labels: Labels; value: number }[]> {
    const h = this.fields(`counter:${name}`);
    return Promise.resolve(Object.entries(h).map(([l, v]) => ({ labels: JSON.parse(l) as Labels, value: Number(v) })));
  }
  histogram(name: string): Promise<HistogramSeries[]> {
    return Promise.resolve(histogramFromFields(name, this.fields(`histogram:${name}`)));
  }
}
