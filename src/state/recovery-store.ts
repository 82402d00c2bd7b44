// The exchange behind `xsm recover` (src/services/recovery.ts): the recovery asks every host agent for its
// copy of the site (src/lib/site-copy.ts) by leaving a request id here; each agent, on its next heartbeat,
// answers under that id with its newest copy (or why it has none) and the fencing epoch it holds. Both keys
// expire, so a recovery that died leaves nothing behind that agents would keep answering.

import type { Redis } from 'ioredis';
import type { SiteCopy } from '../lib/site-copy.ts';

/** One agent's answer to a recovery request. */
export interface CopyAnswer {
  host: string;
  /** The newest site copy on the agent's disk; absent when it has none (or keeps none: no cache directory). */
  copy?: SiteCopy;
  /** Why there is no copy, when the agent could not read one (a damaged file). */
  problem?: string;
  /** The fencing epoch the agent joined under (kept on its disk): a recovery must not lower it. */
  epoch?: number;
}

export interface RecoveryStore {
  /** Asks the agents for their copies under `id`, for `ttlMs`. */
  request(id: string, ttlMs: number): Promise<void>;
  /** The request agents should answer now, if any. */
  pending(): Promise<string | undefined>;
  answer(id: string, answer: CopyAnswer): Promise<void>;
  /** The answers to `id`, by host name. */
  answers(id: string): Promise<CopyAnswer[]>;
  /** Ends the request (the answers go with it). */
  end(id: string): Promise<void>;
}

export class RedisRecoveryStore implements RecoveryStore {
  private readonly requestKey: string;
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {
    this.requestKey = `${prefix}:recover:request`;
  }
  private answersKey(id: string): string {
    return `${this.prefix}:recover:answers:${id}`;
  }
  async request(id: string, ttlMs: number): Promise<void> {
    await this.redis.multi().set(this.requestKey, id, 'PX', ttlMs).del(this.answersKey(id)).exec();
  }
  async pending(): Promise<string | undefined> {
    return (await this.redis.get(this.requestKey)) ?? undefined;
  }
  async answer(id: string, answer: CopyAnswer): Promise<void> {
    const ttl = Math.max(1000, await this.redis.pttl(this.requestKey));
    await this.redis
      .multi()
      .hset(this.answersKey(id), answer.host, JSON.stringify(answer))
      .pexpire(this.answersKey(id), ttl)
      .exec();
  }
  async answers(id: string): Promise<CopyAnswer[]> {
    const h = await this.redis.hgetall(this.answersKey(id));
    return Object.values(h)
      .map((v) => JSON.parse(v) as CopyAnswer)
      .sort((a, b) => a.host.localeCompare(b.host));
  }
  async end(id: string): Promise<void> {
    // Only this request's key: a newer recovery's request stays.
    await this.redis.eval(
      `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
       redis.call('DEL', KEYS[2])
       return 1`,
      2,
      this.requestKey,
      this.answersKey(id),
      id,
    );
  }
}

/** The in-memory twin (requests do not expire: tests end them). */
export class MemoryRecoveryStore implements RecoveryStore {
  private current: string | undefined;
  private readonly byId = new Map<string, Map<string, string>>();
  request(id: string): Promise<void> {
    this.current = id;
    this.byId.set(id, new Map());
    return Promise.resolve();
  }
  pending(): Promise<string | undefined> {
    return Promise.resolve(this.current);
  }
  answer(id: string, answer: CopyAnswer): Promise<void> {
    this.byId.get(id)?.set(answer.host, JSON.stringify(answer));
    return Promise.resolve();
  }
  answers(id: string): Promise<CopyAnswer[]> {
    const m = this.byId.get(id) ?? new Map<string, string>();
    return Promise.resolve(
      [...m.values()].map((v) => JSON.parse(v) as CopyAnswer).sort((a, b) => a.host.localeCompare(b.host)),
    );
  }
  end(id: string): Promise<void> {
    if (this.current === id) this.current = undefined;
    this.byId.delete(id);
    return Promise.resolve();
  }
}
