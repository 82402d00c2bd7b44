// Browser sessions of the console and job dashboard: a random id in an HttpOnly cookie, and in Redis (so
// any API host knows it) only the SHA-256 of the id and the digest of the token that logged in — never a
// token — with an expiry (XSM_SESSION_HOURS, default 8).

import { envWholeNumber } from '../lib/env.ts';
import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

export function sessionHours(env: NodeJS.ProcessEnv = process.env): number {
  return envWholeNumber(env, 'XSM_SESSION_HOURS', 8, 1, 720, 'whole hours');
}

export class SessionStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly ttlSec = sessionHours() * 3600,
  ) {}
  private key(id: string): string {
    return `${this.prefix}:session:${createHash('sha256').update(id).digest('hex')}`;
  }
  /** A new session for the token with this digest; returns the id for the cookie. */
  async create(tokenDigest: Buffer): Promise<string> {
    const id = randomBytes(32).toString('base64url');
    await this.redis.set(this.key(id), tokenDigest.toString('hex'), 'EX', this.ttlSec);
    return id;
  }
  /** The token digest of a live session, or undefined (unknown, expired or logged out). */
  async tokenDigest(id: string): Promise<Buffer | undefined> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(id)) return undefined;
    const hex = await this.redis.get(this.key(id));
    return hex ? Buffer.from(hex, 'hex') : undefined;
  }
  async end(id: string): Promise<void> {
    await this.redis.del(this.key(id));
  }
}
