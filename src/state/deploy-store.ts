// Deploy state: each host's record (installer key, root partition, transfer times, the installed host key:
// what a resumed deploy job trusts), the sessions that share a multicast round or a chain (who sends, who
// joined, when data started to flow), and the list of hosts XSM deployed. Session keys expire after an hour:
// a session lives as long as its deploy.

import type { Redis } from 'ioredis';

export type DeployRecord = Record<string, string>;

export interface ChainMember {
  host: string;
  address: string;
}

export interface DeployedHost {
  at: number;
  image: string;
  sha256: string;
  hostKey?: string;
}

const SESSION_TTL_S = 3600;

export interface DeployStore {
  /** Everything recorded for `host`'s deploy ({} when it was never deployed). */
  record(host: string): Promise<DeployRecord>;
  field(host: string, name: string): Promise<string | undefined>;
  setFields(host: string, fields: Record<string, string | number>): Promise<void>;
  increment(host: string, name: string): Promise<number>;
  forget(host: string): Promise<void>;
  /** True for the first caller of a session: that one runs the session's sender (or heads the chain). */
  claimSessionLead(session: string, role: 'sender' | 'head', host: string): Promise<boolean>;
  /** When the session's data started to flow (what Figure 5 times). */
  markSessionSent(session: string, at: number): Promise<void>;
  sessionSentAt(session: string): Promise<number | undefined>;
  /** A machine ready to join the session's chain; returns how many are ready. */
  joinChain(session: string, member: ChainMember): Promise<number>;
  chainReady(session: string): Promise<ChainMember[]>;
  setChain(session: string, members: ChainMember[]): Promise<void>;
  chain(session: string): Promise<ChainMember[] | undefined>;
  markDeployed(host: string, d: DeployedHost): Promise<void>;
  deployedHosts(): Promise<string[]>;
  /** What XSM last installed on `host` (a deploy, an update): the image a rolling upgrade compares against. */
  deployed(host: string): Promise<DeployedHost | undefined>;
}

export class RedisDeployStore implements DeployStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}
  private hostKey(host: string): string {
    return `${this.prefix}:deploy:host:${host}`;
  }
  private sessionKey(session: string): string {
    return `${this.prefix}:deploy:session:${session}`;
  }
  record(host: string): Promise<DeployRecord> {
    return this.redis.hgetall(this.hostKey(host));
  }
  async field(host: string, name: string): Promise<string | undefined> {
    return (await this.redis.hget(this.hostKey(host), name)) ?? undefined;
  }
  async setFields(host: string, fields: Record<string, string | number>): Promise<void> {
    await this.redis.hset(this.hostKey(host), fields);
  }
  increment(host: string, name: string): Promise<number> {
    return this.redis.hincrby(this.hostKey(host), name, 1);
  }
  async forget(host: string): Promise<void> {
    await this.redis.del(this.hostKey(host));
  }
  async claimSessionLead(session: string, role: 'sender' | 'head', host: string): Promise<boolean> {
    return (await this.redis.set(`${this.sessionKey(session)}:${role}`, host, 'EX', SESSION_TTL_S, 'NX')) === 'OK';
  }
  async markSessionSent(session: string, at: number): Promise<void> {
    await this.redis.set(`${this.sessionKey(session)}:sentAt`, String(at), 'EX', SESSION_TTL_S);
  }
  async sessionSentAt(session: string): Promise<number | undefined> {
    const v = await this.redis.get(`${this.sessionKey(session)}:sentAt`);
    return v === null ? undefined : Number(v);
  }
  async joinChain(session: string, member: ChainMember): Promise<number> {
    const key = `${this.sessionKey(session)}:ready`;
    const [[, n]] = (await this.redis.multi().rpush(key, JSON.stringify(member)).expire(key, SESSION_TTL_S).exec()) as [
      [null, number],
      unknown,
    ];
    return n;
  }
  async chainReady(session: string): Promise<ChainMember[]> {
    const raw = await this.redis.lrange(`${this.sessionKey(session)}:ready`, 0, -1);
    return raw.map((m) => JSON.parse(m) as ChainMember);
  }
  async setChain(session: string, members: ChainMember[]): Promise<void> {
    await this.redis.set(`${this.sessionKey(session)}:chain`, JSON.stringify(members), 'EX', SESSION_TTL_S);
  }
  async chain(session: string): Promise<ChainMember[] | undefined> {
    const v = await this.redis.get(`${this.sessionKey(session)}:chain`);
    return v ? (JSON.parse(v) as ChainMember[]) : undefined;
  }
  async markDeployed(host: string, d: DeployedHost): Promise<void> {
    await this.redis.hset(`${this.prefix}:deploy:deployed`, host, JSON.stringify(d));
  }
  deployedHosts(): Promise<string[]> {
    return this.redis.hkeys(`${this.prefix}:deploy:deployed`);
  }
  async deployed(host: string): Promise<DeployedHost | undefined> {
    const v = await this.redis.hget(`${this.prefix}:deploy:deployed`, host);
    return v ? (JSON.parse(v) as DeployedHost) : undefined;
  }
}

/** The in-memory twin (sessions never expire here: a test's session is shorter than an hour). */
export class MemoryDeployStore implements DeployStore {
  private readonly records = new Map<string, DeployRecord>();
  private readonly sessions = new Map<string, string>();
  private readonly ready = new Map<string, ChainMember[]>();
  private readonly deployedRecords = new Map<string, DeployedHost>();
  record(host: string): Promise<DeployRecord> {
    return Promise.resolve({ ...(this.records.get(host) ?? {}) });
  }
  field(host: string, name: string): Promise<string | undefined> {
    return Promise.resolve(this.records.get(host)?.[name]);
  }
  setFields(host: string, fields: Record<string, string | number>): Promise<void> {
    const r = this.records.get(host) ?? {};
    for (const [k, v] of Object.entries(fields)) r[k] = String(v);
    this.records.set(host, r);
    return Promise.resolve();
  }
  async increment(host: string, name: string): Promise<number> {
    const n = Number((await this.field(host, name)) ?? 0) + 1;
    await this.setFields(host, { [name]: n });
    return n;
  }
  forget(host: string): Promise<void> {
    this.records.delete(host);
    return Promise.resolve();
  }
  claimSessionLead(session: string, role: 'sender' | 'head', host: string): Promise<boolean> {
    const key = `${session}:${role}`;
    if (this.sessions.has(key)) return Promise.resolve(false);
    this.sessions.set(key, host);
    return Promise.resolve(true);
  }
  markSessionSent(session: string, at: number): Promise<void> {
    this.sessions.set(`${session}:sentAt`, String(at));
    return Promise.resolve();
  }
  sessionSentAt(session: string): Promise<number | undefined> {
    const v = this.sessions.get(`${session}:sentAt`);
    return Promise.resolve(v === undefined ? undefined : Number(v));
  }
  joinChain(session: string, member: ChainMember): Promise<number> {
    const list = this.ready.get(session) ?? [];
    list.push({ ...member });
    this.ready.set(session, list);
    return Promise.resolve(list.length);
  }
  chainReady(session: string): Promise<ChainMember[]> {
    return Promise.resolve((this.ready.get(session) ?? []).map((m) => ({ ...m })));
  }
  setChain(session: string, members: ChainMember[]): Promise<void> {
    this.sessions.set(`${session}:chain`, JSON.stringify(members));
    return Promise.resolve();
  }
  chain(session: string): Promise<ChainMember[] | undefined> {
    const v = this.sessions.get(`${session}:chain`);
    return Promise.resolve(v ? (JSON.parse(v) as ChainMember[]) : undefined);
  }
  markDeployed(host: string, d: DeployedHost): Promise<void> {
    this.deployedRecords.set(host, { ...d });
    return Promise.resolve();
  }
  deployedHosts(): Promise<string[]> {
    return Promise.resolve([...this.deployedRecords.keys()]);
  }
  deployed(host: string): Promise<DeployedHost | undefined> {
    const d = this.deployedRecords.get(host);
    return Promise.resolve(d ? { ...d } : undefined);
  }
}
