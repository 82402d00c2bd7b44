// The audit log: who changed what, when, from where, and how it ended. Every mutating API request and every
// automated action (scheduled rebalance, failover) appends one entry to a Redis stream, shared by every
// API host; entries older than the retention (XSM_AUDIT_DAYS, default 90) are trimmed as new ones arrive.
// It is append-only through this store: nothing in XSM edits or deletes an entry.
// MemoryAuditStore is its twin (test/state/twins.test.ts holds both to one contract).

import { envWholeNumber } from '../lib/env.ts';
import type { Redis } from 'ioredis';

/**
 * Identities of XSM's own automated actions, recorded as version authors and in the audit log. Token names
 * cannot contain ':', so no person can act as one of them.
 */
export const SYSTEM = {
  rebalance: { name: 'system:rebalance', role: 'system' },
  failover: { name: 'system:failover', role: 'system' },
} as const;

export interface AuditEntry {
  /** ISO-8601, set by the store. */
  time: string;
  /** The identity: a token's name, or `system:rebalance` / `system:failover`. */
  user: string;
  role: string;
  /** Client address for requests; `internal` for automated actions. */
  from: string;
  /**
   * What was done: submit, edit, apply, retry, deploy, image-capture, host-update, power-confirm, rebalance,
   * schedule, dashboard, login...
   */
  kind: string;
  /** The request (`POST /api/site`) or the action, in words. */
  what: string;
  /** ok, or refused / failed with the HTTP status or the reason. */
  outcome: string;
  status?: number;
  /** Sets the change touched, when it touched any. */
  sets?: string[];
  version?: number;
  job?: string;
  /** Consent given to stop running VMs. */
  consent?: boolean;
  reason?: string;
  /** The stream id: stable, increasing; `?after=` pages from it. */
  id?: string;
}

export interface AuditQuery {
  user?: string;
  set?: string;
  kind?: string;
  /** ISO-8601 or epoch ms bounds. */
  since?: number;
  until?: number;
  limit?: number;
  /** Entries older than this entry id (the `next` of a previous page). */
  cursor?: string;
}

export function auditRetentionDays(env: NodeJS.ProcessEnv = process.env): number {
  return envWholeNumber(env, 'XSM_AUDIT_DAYS', 90, 1, 36500, 'whole days');
}

const DAY_MS = 86_400_000;
/** Entries read per XREVRANGE while a query looks for matches. */
const PAGE = 500;

/** One stream entry as XREVRANGE answers it: the id and the flat field/value list. */
type StreamEntry = [id: string, fields: string[]];
/** Entries from `end` down to `start` (XREVRANGE's id syntax: `+`, `-`, `ms`, `ms-seq`, `(` excludes), newest first. */
type ReadBackwards = (end: string, start: string, count: number) => Promise<StreamEntry[]>;

/** An entry's fields as stored: `time` added, strings as they are, anything else as JSON, undefined left out. */
function encode(entry: Omit<AuditEntry, 'time' | 'id'>, now: number): string[] {
  return Object.entries({ ...entry, time: new Date(now).toISOString() }).flatMap(([k, v]) =>
    v === undefined ? [] : [k, typeof v === 'string' ? v : JSON.stringify(v)],
  );
}

/** The oldest id the retention keeps, as XADD's MINID takes it. A fraction of a day is allowed (tests). */
function minIdAt(now: number, retentionDays: number): string {
  return `${now - Math.round(retentionDays * DAY_MS)}-0`;
}

/** Newest first, filtered; `limit` entries at most (default 100, at most 10000). Both builds query through this. */
async function queryBackwards(read: ReadBackwards, q: AuditQuery): Promise<AuditEntry[]> {
  const limit = Math.min(q.limit ?? 100, 10_000);
  const out: AuditEntry[] = [];
  let end = q.cursor !== undefined ? `(${q.cursor}` : q.until !== undefined ? String(q.until) : '+';
  const start = q.since !== undefined ? String(q.since) : '-';
  // Reads backwards in pages so a filter that matches rarely still finds `limit` entries.
  for (;;) {
    const page = await read(end, start, PAGE);
    for (const [id, flat] of page) {
      const e = decode(id, flat);
      if (q.user !== undefined && e.user !== q.user) continue;
      if (q.kind !== undefined && e.kind !== q.kind) continue;
      if (q.set !== undefined && !e.sets?.includes(q.set)) continue;
      out.push(e);
      if (out.length >= limit) return out;
    }
    if (page.length < PAGE) return out;
    end = `(${page[page.length - 1]![0]}`;
  }
}

export class AuditStore {
  private readonly key: string;
  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly retentionDays = auditRetentionDays(),
  ) {
    this.key = `${prefix}:audit`;
  }

  /** Appends one entry; trims what is older than the retention in the same call. */
  async append(entry: Omit<AuditEntry, 'time' | 'id'>): Promise<string> {
    const now = Date.now();
    const fields = encode(entry, now);
    return (await this.redis.xadd(this.key, 'MINID', '~', minIdAt(now, this.retentionDays), '*', ...fields)) as string;
  }

  /** Newest first, filtered; `limit` entries at most (default 100, at most 10000). */
  query(q: AuditQuery = {}): Promise<AuditEntry[]> {
    return queryBackwards((end, start, count) => this.redis.xrevrange(this.key, end, start, 'COUNT', count), q);
  }
}

/** A stream id as two unsigned 64-bit parts. */
type Id = readonly [ms: bigint, seq: bigint];
const U64_MAX = (1n << 64n) - 1n;
const INVALID_ID = 'ERR Invalid stream ID specified as stream command argument';

function compareIds(a: Id, b: Id): number {
  return a[0] !== b[0] ? (a[0] < b[0] ? -1 : 1) : a[1] !== b[1] ? (a[1] < b[1] ? -1 : 1) : 0;
}

/** Parses an id as Redis does: `ms-seq`, or `ms` with `missingSeq`; `-`/`+` are the smallest/largest. */
function parseId(text: string, missingSeq: bigint): Id {
  if (text === '-') return [0n, 0n];
  if (text === '+') return [U64_MAX, U64_MAX];
  const m = /^([0-9]+)(?:-([0-9]+))?$/.exec(text);
  const id: Id | undefined = m ? [BigInt(m[1]!), m[2] === undefined ? missingSeq : BigInt(m[2])] : undefined;
  if (!id || id[0] > U64_MAX || id[1] > U64_MAX) throw new Error(INVALID_ID);
  return id;
}

/** An XREVRANGE bound: `(` excludes the id itself (the end steps down by one, the start up by one). */
function parseBound(text: string, which: 'start' | 'end'): Id {
  const exclusive = text.startsWith('(');
  const body = exclusive ? text.slice(1) : text;
  if (exclusive && (body === '-' || body === '+')) throw new Error(`ERR invalid ${which} ID for the interval`);
  const [ms, seq] = parseId(body, which === 'start' ? 0n : U64_MAX);
  if (!exclusive) return [ms, seq];
  if (which === 'end') {
    if (seq > 0n) return [ms, seq - 1n];
    if (ms > 0n) return [ms - 1n, U64_MAX];
  } else {
    if (seq < U64_MAX) return [ms, seq + 1n];
    if (ms < U64_MAX) return [ms + 1n, 0n];
  }
  throw new Error(`ERR invalid ${which} ID for the interval`);
}

/**
 * The in-memory twin: the stream as a list in id order, ids made as XADD `*` makes them (the clock's ms, or
 * the last id's ms with the next sequence number when the clock has not moved past it), queried through the
 * same code as the Redis store. One difference, on the safe side: Redis's `MINID ~` trims only whole stream
 * nodes, so it may keep some entries a little past the retention; the twin trims each such entry at once.
 * Both keep every entry within the retention.
 */
export class MemoryAuditStore {
  private readonly stream: { id: Id; fields: string[] }[] = [];
  private last: Id = [0n, 0n];
  constructor(
    private readonly now: () => number = Date.now,
    private readonly retentionDays = auditRetentionDays(),
  ) {}

  append(entry: Omit<AuditEntry, 'time' | 'id'>): Promise<string> {
    const now = this.now();
    const fields = encode(entry, now);
    const minId = parseId(minIdAt(now, this.retentionDays), 0n);
    const ms = BigInt(Math.floor(now));
    const id: Id = ms > this.last[0] ? [ms, 0n] : [this.last[0], this.last[1] + 1n];
    this.last = id;
    this.stream.push({ id, fields });
    let old = 0;
    while (old < this.stream.length && compareIds(this.stream[old]!.id, minId) < 0) old++;
    this.stream.splice(0, old);
    return Promise.resolve(`${id[0]}-${id[1]}`);
  }

  query(q: AuditQuery = {}): Promise<AuditEntry[]> {
    return queryBackwards((end, start, count) => Promise.resolve(this.readBackwards(end, start, count)), q);
  }

  /** XREVRANGE on the list. */
  private readBackwards(endText: string, startText: string, count: number): StreamEntry[] {
    const end = parseBound(endText, 'end');
    const start = parseBound(startText, 'start');
    const out: StreamEntry[] = [];
    for (let i = this.stream.length - 1; i >= 0 && out.length < count; i--) {
      const { id, fields } = this.stream[i]!;
      if (compareIds(id, start) < 0) break;
      if (compareIds(id, end) <= 0) out.push([`${id[0]}-${id[1]}`, [...fields]]);
    }
    return out;
  }
}

const NUMBERS = new Set(['status', 'version']);
const JSON_FIELDS = new Set(['sets', 'consent']);

function decode(id: string, flat: string[]): AuditEntry {
  const e: Record<string, unknown> = { id };
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const [k, v] = [flat[i]!, flat[i + 1]!];
    e[k] = NUMBERS.has(k) ? Number(v) : JSON_FIELDS.has(k) ? (JSON.parse(v) as unknown) : v;
  }
  return e as unknown as AuditEntry;
}
