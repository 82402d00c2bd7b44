// Browser sessions of the console and job dashboard: a random id in an HttpOnly cookie, and in Redis (so
// any API host knows it) only the SHA-256 of the id and the digest of the token that logged in — never a
// token — with an expiry (XSM_SESSION_HOURS, default 8). MemorySessionStore is its twin, on a clock tests set.

import { envWholeNumber } from '../lib/env.ts';
import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

export function sessionHours(env: NodeJS.ProcessEnv = process.env): number {
  return envWholeNumber(env, 'XSM_SESSION_HOURS', 8, 1, 720, 'whole hours');
}

/** What a session is stored under: the hash of its id, so the store never holds an id a cookie could use. */
function idHash(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}
/** A new session id: 32 random bytes, 43 characters of base64url. */
function newId(): string {
  return randomBytes(32).toString('base64url');
}
/** Only the shape of an id newId() makes is looked up. */
function wellFormed(id: string): boolean {
  return /^[A-Za-z0-9_-]{43}$/.test(id);
}

export class SessionStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly ttlSec = sessionHours() * 3600,
  ) {}
  private key(id: string): string {
    return `${this.prefix}:session:${idHash(id)}`;
  }
  /** A new session for the token with this digest; returns the id for the cookie. */
  async create(tokenDigest: Buffer): Promise<string> {
    const id = newId();
    await this.redis.set(this.key(id), tokenDigest.toString('hex'), 'EX', this.ttlSec);
    return id;
  }
  /** The token digest of a live session, or undefined (unknown, expired or logged out). */
  async tokenDigest(id: string): Promise<Buffer | undefined> {
    if (!wellFormed(id)) return undefined;
    const hex = await this.redis.get(this.key(id));
    return hex ? Buffer.from(hex, 'hex') : undefined;
  }
  async end(id: string): Promise<void> {
    await this.redis.del(this.key(id));
  }
}

/**
 * The in-memory twin; `now` is injectable so tests can pass time. A session lives `ttlSec` seconds, gone once
 * the clock is past its expiry, as a Redis key set with EX is; a TTL Redis refuses is refused here too.
 */
export class MemorySessionStore {
  private readonly byHash = new Map<string, { hex: string; expiresAt: number }>();
  constructor(
    private readonly now: () => number = Date.now,
    private readonly ttlSec = sessionHours() * 3600,
  ) {}
  create(tokenDigest: Buffer): Promise<string> {
    if (!Number.isInteger(this.ttlSec)) return Promise.reject(new Error('ERR value is not an integer or out of range'));
    if (this.ttlSec <= 0) return Promise.reject(new Error("ERR invalid expire time in 'set' command"));
    const now = this.now();
    for (const [h, s] of this.byHash) if (now > s.expiresAt) this.byHash.delete(h);
    const id = newId();
    this.byHash.set(idHash(id), { hex: tokenDigest.toString('hex'), expiresAt: now + this.ttlSec * 1000 });
    return Promise.resolve(id);
  }
  tokenDigest(id: string): Promise<Buffer | undefined> {
    if (!wellFormed(id)) return Promise.resolve(undefined);
    const s = this.byHash.get(idHash(id));
    const hex = s && this.now() <= s.expiresAt ? s.hex : undefined;
    return Promise.resolve(hex ? Buffer.from(hex, 'hex') : undefined);
  }
  end(id: string): Promise<void> {
    this.byHash.delete(idHash(id));
    return Promise.resolve();
  }
}
