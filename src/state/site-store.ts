// The desired state in Redis: every accepted site file is a numbered version with author, time and
// reason; history is kept. A new version names the version it was based on, and a stale base is refused
// (atomically, in one Lua script), so two operators can never overwrite each other's change. The plan made
// for a version is stored by the same script: a version never exists without the plan that will run.

import type { Redis } from 'ioredis';
import type { StoredPlan } from '../site/actions.ts';
import { loadSite, type LoadOptions } from '../site/parse.ts';
import type { LoadResult, Site, SiteIssue } from '../site/model.ts';

export interface VersionMeta {
  version: number;
  author: string;
  reason: string;
  /** Epoch ms. */
  time: number;
  /** The version this one was written against (0 for the first). */
  base: number;
}

export interface StoredVersion extends VersionMeta {
  xml: string;
}

export class StaleVersionError extends Error {
  constructor(
    readonly base: number,
    readonly current: number,
  ) {
    super(
      `the site file was changed meanwhile: your change is based on version ${base} but the current version is ${current}; fetch version ${current}, redo your change on it and submit again`,
    );
    this.name = 'StaleVersionError';
  }
}

export class InvalidSiteError extends Error {
  constructor(readonly issues: SiteIssue[]) {
    super(`the site file is invalid (${issues.length} error${issues.length === 1 ? '' : 's'}); nothing was stored`);
    this.name = 'InvalidSiteError';
  }
}

/** A plan as the submit path hands it over: the version number is only known once stored. */
export type PlanRecord = Omit<StoredPlan, 'version'>;

// KEYS: current, seq, history, versionPrefix, planPrefix  ARGV: base, xml, author, reason, time, plan ('' = none)
const SUBMIT = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then return {-1, current} end
local v = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[4] .. v, 'xml', ARGV[2], 'author', ARGV[3], 'reason', ARGV[4], 'time', ARGV[5], 'base', ARGV[1])
if ARGV[6] ~= '' then redis.call('SET', KEYS[5] .. v, ARGV[6]) end
redis.call('SET', KEYS[1], v)
redis.call('RPUSH', KEYS[3], v)
return {v, current}
`;

// KEYS: current, seq, history, versionPrefix, applied
// ARGV: expected current, version, xml, author, reason, time, lost author, lost reason
// `xsm recover`: stores a version kept by the agents under its own number, the versions between the store's
// current one and it as entries that say they were lost (the history list keeps version v at index v - 1).
const RESTORE = `
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(ARGV[1]) then return {-1, current} end
local v = tonumber(ARGV[2])
if v <= current then return {-2, current} end
for i = current + 1, v - 1 do
  redis.call('HSET', KEYS[4] .. i, 'author', ARGV[7], 'reason', ARGV[8], 'time', ARGV[6], 'base', i - 1)
  redis.call('RPUSH', KEYS[3], i)
end
redis.call('HSET', KEYS[4] .. v, 'xml', ARGV[3], 'author', ARGV[4], 'reason', ARGV[5], 'time', ARGV[6], 'base', v - 1)
redis.call('RPUSH', KEYS[3], v)
redis.call('SET', KEYS[2], v)
redis.call('SET', KEYS[1], v)
redis.call('SET', KEYS[5], v)
return {v, current}
`;

/** What `restore` writes in the history for the versions between the store's newest and the recovered one. */
export const LOST_VERSION = {
  author: 'xsm recover',
  reason: 'lost with Redis: no host agent kept this version',
};

/** A restore found the store other than the recovery saw it (someone stored a version meanwhile). */
export class RestoreRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RestoreRefusedError';
  }
}

/** What `restore` stores: a version the agents kept, under its own number. */
export interface RestoreRequest {
  version: number;
  xml: string;
  author: string;
  reason: string;
  /** The store's current version the recovery saw (0: empty); anything else now refuses. */
  expectedCurrent: number;
}

function restoreRefusal(code: number, current: number, req: RestoreRequest): RestoreRefusedError {
  return new RestoreRefusedError(
    code === -1
      ? `the site store's current version is now ${current}, not ${req.expectedCurrent} as the recovery saw: someone stored a version meanwhile; nothing was restored, run recover again`
      : `the site store already holds version ${current}, not older than the agents' version ${req.version}: nothing to restore`,
  );
}

/** The file to store, validated (unless the caller already loaded it); invalid: nothing is stored. */
function validForStore(
  xml: string,
  file: string | undefined,
  options: LoadOptions,
  parsed: Extract<LoadResult, { ok: true }> | undefined,
): Extract<LoadResult, { ok: true }> {
  const loaded = parsed ?? loadSite(xml, file ?? 'site.xml', options);
  if (!loaded.ok) throw new InvalidSiteError(loaded.errors);
  return loaded;
}

/** A plan as stored: JSON without the source positions (they belong to the file, which is stored beside it). */
function planText(plan: PlanRecord): string {
  return JSON.stringify(plan, (k, v: unknown) => (k === 'pos' ? undefined : v));
}

function planFromText(text: string | null | undefined, version: number): StoredPlan | undefined {
  return text ? { ...(JSON.parse(text) as PlanRecord), version } : undefined;
}

/** Parsed sites by version, newest few kept; a stored version's XML never changes, so an entry never goes stale. */
class ParsedSites {
  private readonly byVersion = new Map<number, Site>();
  constructor(private readonly keep = 8) {}
  get(version: number, xml: string): Site {
    const hit = this.byVersion.get(version);
    if (hit) return hit;
    // Accepted when submitted; where its <Power> points is checked again at use (src/drivers/power/secrets.ts).
    const r: LoadResult = loadSite(xml, `site v${version}`, { power: false });
    if (!r.ok) throw new Error(`stored site version ${version} no longer validates: ${r.errors[0]?.message}`);
    const site = deepFreeze(r.site);
    this.byVersion.set(version, site);
    if (this.byVersion.size > this.keep) this.byVersion.delete(Math.min(...this.byVersion.keys()));
    return site;
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

export class SiteStore {
  private readonly parsed = new ParsedSites();
  private readonly k: {
    current: string;
    seq: string;
    history: string;
    version: string;
    applied: string;
    plan: string;
  };
  constructor(
    private readonly redis: Redis,
    prefix: string,
  ) {
    this.k = {
      current: `${prefix}:site:current`,
      seq: `${prefix}:site:seq`,
      history: `${prefix}:site:history`,
      version: `${prefix}:site:v:`,
      applied: `${prefix}:site:applied`,
      plan: `${prefix}:plan:v`,
    };
  }

  /**
   * Validates, then stores as a new version if `base` is still the current version, with `plan` (the plan
   * made for it) in the same atomic step. Versions meant to run are stored through src/services/site-service.ts,
   * which plans them; a version stored without a plan (an inventory for deployment) cannot be applied.
   */
  async submit(
    xml: string,
    meta: { base: number; author: string; reason: string; file?: string },
    options: LoadOptions = {},
    plan?: PlanRecord,
    /** `xml` already loaded by the caller (the submit path): not parsed a second time. */
    parsed?: Extract<LoadResult, { ok: true }>,
  ): Promise<{ version: number; site: Site; warnings: SiteIssue[] }> {
    const loaded = validForStore(xml, meta.file, options, parsed);
    const res = (await this.redis.eval(
      SUBMIT,
      5,
      this.k.current,
      this.k.seq,
      this.k.history,
      this.k.version,
      this.k.plan,
      String(meta.base),
      xml,
      meta.author,
      meta.reason,
      String(Date.now()),
      plan ? planText(plan) : '',
    )) as [number, number];
    if (res[0] === -1) throw new StaleVersionError(meta.base, res[1]);
    return { version: res[0], site: loaded.site, warnings: loaded.warnings };
  }

  /**
   * `xsm recover`: stores `req.xml` as version `req.version` (validated first), the versions between as lost,
   * and marks it applied, in one atomic step; refused unless the store's current version is still
   * `req.expectedCurrent` and older. Later submits continue from `req.version`.
   */
  async restore(req: RestoreRequest): Promise<void> {
    validForStore(req.xml, `site v${req.version}`, { power: false }, undefined);
    const res = (await this.redis.eval(
      RESTORE,
      5,
      this.k.current,
      this.k.seq,
      this.k.history,
      this.k.version,
      this.k.applied,
      String(req.expectedCurrent),
      String(req.version),
      req.xml,
      req.author,
      req.reason,
      String(Date.now()),
      LOST_VERSION.author,
      LOST_VERSION.reason,
    )) as [number, number];
    if (res[0] < 0) throw restoreRefusal(res[0], res[1], req);
  }

  /** The plan stored with `version`, exactly as it was shown when the version was submitted. */
  async plan(version: number): Promise<StoredPlan | undefined> {
    return planFromText(await this.redis.get(`${this.k.plan}${version}`), version);
  }

  async currentVersion(): Promise<number> {
    return Number((await this.redis.get(this.k.current)) ?? 0);
  }

  async get(version: number): Promise<StoredVersion | undefined> {
    const h = await this.redis.hgetall(`${this.k.version}${version}`);
    if (!h.xml) return undefined;
    return {
      version,
      xml: h.xml,
      author: h.author ?? '',
      reason: h.reason ?? '',
      time: Number(h.time),
      base: Number(h.base),
    };
  }

  /**
   * A version and its parsed site. A version never changes once stored, so its parse is kept (the newest
   * few): reads do not parse XML again. The site is frozen, since every caller shares it.
   */
  async load(version: number): Promise<{ stored: StoredVersion; site: Site }> {
    const stored = await this.get(version);
    if (!stored) throw new Error(`site version ${version} does not exist`);
    return { stored, site: this.parsed.get(version, stored.xml) };
  }

  /** Newest first: the `limit` versions before version `before` (default: the newest). */
  async history(limit = 50, before?: number): Promise<VersionMeta[]> {
    // The history list holds version v at index v - 1 (versions are numbered in the order they are stored).
    const end = before === undefined ? -1 : before - 2;
    if (end < -1 || (before !== undefined && end < 0)) return [];
    const start = end === -1 ? -limit : Math.max(0, end - limit + 1);
    const ids = await this.redis.lrange(this.k.history, start, end);
    const out: VersionMeta[] = [];
    for (const id of ids.reverse()) {
      const h = await this.redis.hmget(`${this.k.version}${id}`, 'author', 'reason', 'time', 'base');
      out.push({ version: Number(id), author: h[0] ?? '', reason: h[1] ?? '', time: Number(h[2]), base: Number(h[3]) });
    }
    return out;
  }

  /** The version whose plan was last turned into jobs (0: none). */
  async appliedVersion(): Promise<number> {
    return Number((await this.redis.get(this.k.applied)) ?? 0);
  }
  async markApplied(version: number): Promise<void> {
    await this.redis.set(this.k.applied, String(version));
  }
}

/**
 * The in-memory twin of SiteStore: the same validation, the same stale-base refusal and the same
 * plan-with-version rule, for tests of services that need no Redis (test/state/twins.test.ts holds both
 * to one contract).
 */
export class MemorySiteStore {
  private readonly parsed = new ParsedSites();
  private readonly versions: StoredVersion[] = [];
  private readonly plans = new Map<number, string>();
  private applied = 0;

  async submit(
    xml: string,
    meta: { base: number; author: string; reason: string; file?: string },
    options: LoadOptions = {},
    plan?: PlanRecord,
    parsed?: Extract<LoadResult, { ok: true }>,
  ): Promise<{ version: number; site: Site; warnings: SiteIssue[] }> {
    const loaded = validForStore(xml, meta.file, options, parsed);
    const current = this.versions.length;
    if (meta.base !== current) throw new StaleVersionError(meta.base, current);
    const version = current + 1;
    this.versions.push({ version, xml, author: meta.author, reason: meta.reason, time: Date.now(), base: meta.base });
    if (plan) this.plans.set(version, planText(plan));
    return { version, site: loaded.site, warnings: loaded.warnings };
  }
  restore(req: RestoreRequest): Promise<void> {
    validForStore(req.xml, `site v${req.version}`, { power: false }, undefined);
    const current = this.versions.length;
    if (current !== req.expectedCurrent || req.version <= current)
      return Promise.reject(restoreRefusal(current !== req.expectedCurrent ? -1 : -2, current, req));
    const time = Date.now();
    for (let v = current + 1; v < req.version; v++)
      this.versions.push({ version: v, xml: '', ...LOST_VERSION, time, base: v - 1 });
    this.versions.push({
      version: req.version,
      xml: req.xml,
      author: req.author,
      reason: req.reason,
      time,
      base: req.version - 1,
    });
    this.applied = req.version;
    return Promise.resolve();
  }
  plan(version: number): Promise<StoredPlan | undefined> {
    return Promise.resolve(planFromText(this.plans.get(version), version));
  }
  currentVersion(): Promise<number> {
    return Promise.resolve(this.versions.length);
  }
  get(version: number): Promise<StoredVersion | undefined> {
    const v = this.versions[version - 1];
    return Promise.resolve(v?.xml ? { ...v } : undefined);
  }
  async load(version: number): Promise<{ stored: StoredVersion; site: Site }> {
    const stored = await this.get(version);
    if (!stored) throw new Error(`site version ${version} does not exist`);
    return { stored, site: this.parsed.get(version, stored.xml) };
  }
  history(limit = 50, before?: number): Promise<VersionMeta[]> {
    const newest = before === undefined ? this.versions.length : before - 1;
    const out = this.versions
      .slice(Math.max(0, newest - limit), Math.max(0, newest))
      .reverse()
      .map(({ version, author, reason, time, base }) => ({ version, author, reason, time, base }));
    return Promise.resolve(out);
  }
  appliedVersion(): Promise<number> {
    return Promise.resolve(this.applied);
  }
  markApplied(version: number): Promise<void> {
    this.applied = version;
    return Promise.resolve();
  }
}
