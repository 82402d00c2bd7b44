// Queue data that an XSM on BullMQ 5 left in Redis, checked by every process before it starts a worker.
// BullMQ 6 runs BullMQ 5 queues as they are (jobs, flows waiting for children, job schedulers, locks and
// stalled jobs keep their keys and fields) with two exceptions, handled here:
//   - a queue paused under BullMQ 5 keeps its waiting jobs in a `paused` list that BullMQ 6 no longer
//     reads (it keeps them in `wait` and only sets meta.paused): they are moved into `wait`, atomically,
//     the way BullMQ 6's own resume does, and the queue stays paused if it was;
//   - legacy repeatable jobs (the `repeat` job option, gone in BullMQ 6) are refused: XSM never creates
//     them, so whoever did must move them to job schedulers (or remove them) while still on BullMQ 5.
// Everything is checked before anything is changed: a refusal leaves Redis exactly as it was.

import type { Redis } from 'ioredis';
import type { Logger } from '../lib/log.ts';

export interface LegacyRepeatable {
  queue: string;
  /** The member of the queue's `repeat` sorted set (BullMQ 5 stores a hash of name, id and schedule). */
  key: string;
  name: string;
  /** "every 60000 ms" or "pattern 0 * * * *", as stored. */
  schedule: string;
}

export interface QueueDataReport {
  /** Every BullMQ queue under the prefix, and the `bullmq:x.y.z` that last wrote its meta hash. */
  queues: { name: string; writtenBy: string | null }[];
  /** Jobs moved out of a BullMQ 5 `paused` list into `wait`, per queue (queues with none are left out). */
  movedFromPausedList: Record<string, number>;
}

/** Redis holds BullMQ 5 data BullMQ 6 cannot run; the message says what to do. Nothing was changed. */
export class LegacyQueueDataError extends Error {
  constructor(
    readonly prefix: string,
    readonly legacy: LegacyRepeatable[],
  ) {
    const list = legacy.map((l) => `queue ${l.queue}: "${l.name}" ${l.schedule} (repeat key ${l.key})`).join('; ');
    super(
      `Redis under prefix "${prefix}" holds ${legacy.length} BullMQ 5 repeatable job(s), which BullMQ 6 ` +
        `(this XSM) cannot run: ${list}. XSM itself never creates them (its schedules are job schedulers). ` +
        `With the software that created them, still on BullMQ 5, recreate each as a job scheduler ` +
        `(Queue.upsertJobScheduler) or remove it (Queue.removeRepeatableByKey(key)); then start XSM again. ` +
        `Nothing in Redis was changed.`,
    );
    this.name = 'LegacyQueueDataError';
  }
}

// Moves up to 1000 job ids from the legacy `paused` list to the consuming end of `wait` (BullMQ workers
// take from the right; the oldest paused jobs are rightmost and stay first), as BullMQ 6's resume does.
// A queue that is not paused gets the marker that wakes its workers. Returns how many ids moved.
//   KEYS: paused, wait, meta, marker
const MOVE_PAUSED_LIST = `
local jobs = redis.call('LRANGE', KEYS[1], 0, 999)
if #jobs == 0 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 and redis.call('LLEN', KEYS[1]) == #jobs then
  redis.call('RENAME', KEYS[1], KEYS[2])
else
  redis.call('RPUSH', KEYS[2], unpack(jobs))
  redis.call('LTRIM', KEYS[1], #jobs, -1)
end
if redis.call('HEXISTS', KEYS[3], 'paused') == 0 then redis.call('ZADD', KEYS[4], 0, '0') end
return #jobs
`;

function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}

/** Queue names under `prefix`: every `prefix:NAME:meta` hash (XSM's queue names have no ':'). */
async function queueNames(redis: Redis, prefix: string): Promise<string[]> {
  const names = new Set<string>();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${globEscape(prefix)}:*:meta`, 'COUNT', 1000);
    cursor = next;
    for (const k of keys) {
      const name = k.slice(prefix.length + 1, -':meta'.length);
      if (name && !name.includes(':')) names.add(name);
    }
  } while (cursor !== '0');
  return [...names].sort();
}

/** Entries of the queue's `repeat` set without the `ic` field that only job schedulers carry. */
async function legacyRepeatables(redis: Redis, prefix: string, queue: string): Promise<LegacyRepeatable[]> {
  const base = `${prefix}:${queue}:repeat`;
  const members = await redis.zrange(base, '0', '-1');
  const out: LegacyRepeatable[] = [];
  for (const key of members) {
    const [ic, name, every, pattern] = await redis.hmget(`${base}:${key}`, 'ic', 'name', 'every', 'pattern');
    if (ic !== null) continue;
    const schedule = every ? `every ${every} ms` : pattern ? `pattern ${pattern}` : 'with no schedule stored';
    out.push({ queue, key, name: name ?? '(no name)', schedule });
  }
  return out;
}

/**
 * Checks the queues under `prefix` for BullMQ 5 data and brings what can safely be brought forward; throws
 * LegacyQueueDataError, changing nothing, for what cannot. Safe to run from several processes at once.
 */
export async function upgradeQueueData(redis: Redis, prefix: string, log?: Logger): Promise<QueueDataReport> {
  const report: QueueDataReport = { queues: [], movedFromPausedList: {} };
  const legacy: LegacyRepeatable[] = [];
  const withPausedList: string[] = [];
  for (const name of await queueNames(redis, prefix)) {
    report.queues.push({ name, writtenBy: await redis.hget(`${prefix}:${name}:meta`, 'version') });
    legacy.push(...(await legacyRepeatables(redis, prefix, name)));
    if ((await redis.llen(`${prefix}:${name}:paused`)) > 0) withPausedList.push(name);
  }
  if (legacy.length) throw new LegacyQueueDataError(prefix, legacy);
  for (const name of withPausedList) {
    const keys = ['paused', 'wait', 'meta', 'marker'].map((k) => `${prefix}:${name}:${k}`);
    let moved = 0;
    for (let n = -1; n !== 0; moved += n) n = Number(await redis.eval(MOVE_PAUSED_LIST, keys.length, ...keys));
    report.movedFromPausedList[name] = moved;
    log?.info('moved jobs of a queue paused under BullMQ 5 into its waiting list', { queue: name, jobs: moved });
  }
  return report;
}
