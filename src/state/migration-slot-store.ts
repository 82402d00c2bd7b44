// Concurrency limits for live migrations, counted in Redis so they hold across every host agent and control
// worker: at most `global` live migrations site-wide, `perSource` leaving one host and `perTarget` reaching
// one host. A migration takes a slot before `xl migrate` and gives it back after; a slot expires by itself
// (its holder renews it while it runs), so an agent that dies does not keep one for ever.

import type { Redis } from 'ioredis';

export interface MigrationLimits {
  global: number;
  perSource: number;
  perTarget: number;
}

/** 4 at once site-wide, 1 leaving a host, 2 reaching a host. */
export const DEFAULT_MIGRATION_LIMITS: MigrationLimits = { global: 4, perSource: 1, perTarget: 2 };

/**
 * `GLOBAL/SOURCE/TARGET`, e.g. `4/1/2` (XSM_MIGRATION_LIMITS): whole numbers of at least 1. Every host
 * agent must be given the same, as each checks the shared count against its own.
 */
export function parseMigrationLimits(text: string): MigrationLimits {
  const m = /^([1-9][0-9]{0,3})\/([1-9][0-9]{0,3})\/([1-9][0-9]{0,3})$/.exec(text.trim());
  if (!m) throw new Error(`migration limits "${text}" are not GLOBAL/SOURCE/TARGET whole numbers >= 1, e.g. 4/1/2`);
  return { global: Number(m[1]), perSource: Number(m[2]), perTarget: Number(m[3]) };
}

export interface MigrationSlot {
  /** The migration's job id: taking a slot again under the same id renews it. */
  id: string;
  from: string;
  to: string;
}

export type SlotAnswer = { ok: true } | { ok: false; why: string };

export interface MigrationSlotStore {
  /** Takes a slot for `slot` for `ttlMs` unless a limit is reached; the refusal names the limit. */
  acquire(slot: MigrationSlot, limits: MigrationLimits, ttlMs: number): Promise<SlotAnswer>;
  /** Extends a slot still held (false when it is not: released or expired); never takes a new one. */
  renew(id: string, ttlMs: number): Promise<boolean>;
  release(id: string): Promise<void>;
  /** The slots held now. */
  held(): Promise<MigrationSlot[]>;
}

type Held = MigrationSlot & { expires: number };

/** Why `slot` may not start beside `held` (other holders only), or undefined when it may. */
export function whyNoSlot(slot: MigrationSlot, held: readonly MigrationSlot[], limits: MigrationLimits) {
  const others = held.filter((h) => h.id !== slot.id);
  const leaving = others.filter((h) => h.from === slot.from).length;
  const reaching = others.filter((h) => h.to === slot.to).length;
  if (others.length >= limits.global) return `${others.length} of ${limits.global} live migrations run site-wide`;
  if (leaving >= limits.perSource) return `${leaving} of ${limits.perSource} live migrations leave ${slot.from}`;
  if (reaching >= limits.perTarget) return `${reaching} of ${limits.perTarget} live migrations reach ${slot.to}`;
  return undefined;
}

// KEYS: slots hash  ARGV: id, from, to, ttlMs, global, perSource, perTarget
// -> '' when taken, else why not. Expired slots are dropped first; time is Redis's own.
const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', KEYS[1])
local n, leaving, reaching = 0, 0, 0
for i = 1, #all, 2 do
  local s = cjson.decode(all[i + 1])
  if s.expires <= now then
    redis.call('HDEL', KEYS[1], all[i])
  elseif all[i] ~= ARGV[1] then
    n = n + 1
    if s.from == ARGV[2] then leaving = leaving + 1 end
    if s.to == ARGV[3] then reaching = reaching + 1 end
  end
end
if n >= tonumber(ARGV[5]) then return n .. ' of ' .. ARGV[5] .. ' live migrations run site-wide' end
if leaving >= tonumber(ARGV[6]) then
  return leaving .. ' of ' .. ARGV[6] .. ' live migrations leave ' .. ARGV[2]
end
if reaching >= tonumber(ARGV[7]) then
  return reaching .. ' of ' .. ARGV[7] .. ' live migrations reach ' .. ARGV[3]
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode({from = ARGV[2], to = ARGV[3], expires = now + tonumber(ARGV[4])}))
return ''`;

// KEYS: slots hash  ARGV: id, ttlMs -> 1 when renewed
const RENEW = `
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = cjson.decode(cur)
if s.expires <= now then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 0
end
s.expires = now + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(s))
return 1`;

export class RedisMigrationSlotStore implements MigrationSlotStore {
  private readonly key: string;
  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.key = `${prefix}:migrations:slots`;
  }
  async acquire(slot: MigrationSlot, limits: MigrationLimits, ttlMs: number): Promise<SlotAnswer> {
    const why = (await this.redis.eval(
      ACQUIRE,
      1,
      this.key,
      slot.id,
      slot.from,
      slot.to,
      String(Math.max(1, Math.round(ttlMs))),
      String(limits.global),
      String(limits.perSource),
      String(limits.perTarget),
    )) as string;
    return why === '' ? { ok: true } : { ok: false, why };
  }
  async renew(id: string, ttlMs: number): Promise<boolean> {
    return ((await this.redis.eval(RENEW, 1, this.key, id, String(Math.max(1, Math.round(ttlMs))))) as number) === 1;
  }
  async release(id: string): Promise<void> {
    await this.redis.hdel(this.key, id);
  }
  async held(): Promise<MigrationSlot[]> {
    const [all, [sec, usec]] = await Promise.all([this.redis.hgetall(this.key), this.redis.time()]);
    const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    return Object.entries(all)
      .map(([id, v]) => ({ id, ...(JSON.parse(v) as Omit<Held, 'id'>) }))
      .filter((s) => s.expires > now)
      .map(({ id, from, to }) => ({ id, from, to }))
      .sort((a, b) => a.id.localeCompare(b.id));
  }
}

/** The in-memory twin; `now` is injectable so tests can pass time. */
export class MemoryMigrationSlotStore implements MigrationSlotStore {
  private readonly slots = new Map<string, Held>();
  constructor(private readonly now: () => number = Date.now) {}
  private live(): Held[] {
    for (const [id, s] of this.slots) if (s.expires <= this.now()) this.slots.delete(id);
    return [...this.slots.values()];
  }
  acquire(slot: MigrationSlot, limits: MigrationLimits, ttlMs: number): Promise<SlotAnswer> {
    const why = whyNoSlot(slot, this.live(), limits);
    if (why) return Promise.resolve({ ok: false, why });
    this.slots.set(slot.id, { ...slot, expires: this.now() + Math.max(1, Math.round(ttlMs)) });
    return Promise.resolve({ ok: true });
  }
  renew(id: string, ttlMs: number): Promise<boolean> {
    this.live();
    const s = this.slots.get(id);
    if (s) s.expires = this.now() + Math.max(1, Math.round(ttlMs));
    return Promise.resolve(s !== undefined);
  }
  release(id: string): Promise<void> {
    this.slots.delete(id);
    return Promise.resolve();
  }
  held(): Promise<MigrationSlot[]> {
    return Promise.resolve(
      this.live()
        .map(({ id, from, to }) => ({ id, from, to }))
        .sort((a, b) => a.id.localeCompare(b.id)),
    );
  }
}
