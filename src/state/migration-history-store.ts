// Every migration XSM made or tried — an operator's, the rebalancer's, a maintenance drain's, failover's
// restarts elsewhere — with why, what the planner predicted it would gain, how it ended and how long it
// took. Two writers fill one record: the planner that chose the move (why, predicted gain) and the agent
// that ran it (outcome, duration); they may write in either order, so a write merges into the record.

import type { Redis } from 'ioredis';

export type MigrationSource = 'operator' | 'rebalance' | 'drain' | 'failover';
export type MigrationOutcome = 'running' | 'ok' | 'failed';

export interface MigrationRecord {
  /** `v{version}-{vm}`: one record per VM moved by a version. */
  id: string;
  vm: string;
  version: number;
  from?: string;
  to?: string;
  /** live (xl migrate), cold (stop, copy, start) or restart (failover: the old host died). */
  mode?: 'live' | 'cold' | 'restart';
  source?: MigrationSource;
  /** Why, as the planner that chose the move said (rebalancer, failover). */
  reason?: string;
  /** Why, as the plan's action says (every migration has one; the planner's reason, when given, is better). */
  actionReason?: string;
  /** What the planner expected the move to lower its score by (absent when it gave none). */
  predictedGain?: number;
  outcome?: MigrationOutcome;
  /** Epoch ms the move started running. */
  startedAt?: number;
  durationMs?: number;
  error?: string;
  /** Epoch ms the record was first written (its order in the list). */
  at: number;
}

export type MigrationUpdate = Omit<MigrationRecord, 'id' | 'at'>;

export interface MigrationHistoryStore {
  /** Merges `update` into the record of `update.vm` moved by `update.version` (created if new). */
  record(update: MigrationUpdate): Promise<void>;
  /** Newest first. */
  list(limit?: number): Promise<MigrationRecord[]>;
  /** The record of `vm` moved by `version`, if there is one. */
  get(version: number, vm: string): Promise<MigrationRecord | undefined>;
  /** The records of each of `vms` moved by `version`, in their order (undefined where there is none). */
  getMany(version: number, vms: readonly string[]): Promise<(MigrationRecord | undefined)[]>;
}

/** Fields per HMGET in getMany: a wave of 10,000 creates asks in ten commands, none holding Redis long. */
const GET_MANY_CHUNK = 1000;

export const migrationId = (version: number, vm: string) => `v${version}-${vm}`;

/** How many records are kept; the oldest go first. */
export const HISTORY_KEEP = 10000;

// KEYS: records hash, order zset (by first write), sequence  ARGV: id, update (JSON), now, keep
const RECORD = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local rec
if cur then rec = cjson.decode(cur) else
  rec = { id = ARGV[1], at = tonumber(ARGV[3]) }
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[3]), ARGV[1])
end
for k, v in pairs(cjson.decode(ARGV[2])) do rec[k] = v end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
if extra > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, extra - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1)
  redis.call('HDEL', KEYS[1], unpack(old))
end
return 1`;

const defined = (u: MigrationUpdate) => Object.fromEntries(Object.entries(u).filter(([, v]) => v !== undefined));

export class RedisMigrationHistoryStore implements MigrationHistoryStore {
  private readonly records: string;
  private readonly order: string;
  private readonly seq: string;
  constructor(
    private readonly redis: Redis,
    prefix: string,
    private readonly now: () => number = Date.now,
  ) {
    this.records = `${prefix}:migrations:history`;
    this.order = `${prefix}:migrations:order`;
    this.seq = `${prefix}:migrations:seq`;
  }
  async record(update: MigrationUpdate): Promise<void> {
    const id = migrationId(update.version, update.vm);
    await this.redis.eval(
      RECORD,
      3,
      this.records,
      this.order,
      this.seq,
      id,
      JSON.stringify(defined(update)),
      String(this.now()),
      String(HISTORY_KEEP),
    );
  }
  async get(version: number, vm: string): Promise<MigrationRecord | undefined> {
    const raw = await this.redis.hget(this.records, migrationId(version, vm));
    return raw ? (JSON.parse(raw) as MigrationRecord) : undefined;
  }
  async getMany(version: number, vms: readonly string[]): Promise<(MigrationRecord | undefined)[]> {
    const out: (MigrationRecord | undefined)[] = [];
    for (let i = 0; i < vms.length; i += GET_MANY_CHUNK) {
      const ids = vms.slice(i, i + GET_MANY_CHUNK).map((vm) => migrationId(version, vm));
      for (const raw of await this.redis.hmget(this.records, ...ids))
        out.push(raw ? (JSON.parse(raw) as MigrationRecord) : undefined);
    }
    return out;
  }
  async list(limit = 100): Promise<MigrationRecord[]> {
    const ids = await this.redis.zrevrange(this.order, 0, Math.max(0, limit - 1));
    if (!ids.length) return [];
    const raw = await this.redis.hmget(this.records, ...ids);
    return raw.flatMap((r) => (r ? [JSON.parse(r) as MigrationRecord] : []));
  }
}

/** The in-memory twin; `now` is injectable so tests can pass time. */
export class MemoryMigrationHistoryStore implements MigrationHistoryStore {
  private readonly records = new Map<string, MigrationRecord>();
  private seq = 0;
  private readonly seqOf = new Map<string, number>();
  constructor(private readonly now: () => number = Date.now) {}
  record(update: MigrationUpdate): Promise<void> {
    const id = migrationId(update.version, update.vm);
    const cur = this.records.get(id) ?? { id, vm: update.vm, version: update.version, at: this.now() };
    if (!this.seqOf.has(id)) this.seqOf.set(id, this.seq++);
    this.records.set(id, { ...cur, ...defined(update) } as MigrationRecord);
    if (this.records.size > HISTORY_KEEP) {
      const oldest = [...this.seqOf].sort((a, b) => a[1] - b[1])[0]![0];
      this.records.delete(oldest);
      this.seqOf.delete(oldest);
    }
    return Promise.resolve();
  }
  get(version: number, vm: string): Promise<MigrationRecord | undefined> {
    const r = this.records.get(migrationId(version, vm));
    return Promise.resolve(r ? structuredClone(r) : undefined);
  }
  async getMany(version: number, vms: readonly string[]): Promise<(MigrationRecord | undefined)[]> {
    return Promise.all(vms.map((vm) => this.get(version, vm)));
  }
  list(limit = 100): Promise<MigrationRecord[]> {
    return Promise.resolve(
      [...this.records.values()]
        .sort((a, b) => (this.seqOf.get(b.id) ?? 0) - (this.seqOf.get(a.id) ?? 0))
        .slice(0, limit)
        .map((r) => structuredClone(r)),
    );
  }
}
