// Where Redis is: read once from the environment. Every process (API, agents, workers, CLI) uses this.

import { Redis, type RedisOptions } from 'ioredis';

export interface RedisConfig {
  url: string;
  /** Key prefix for XSM's own keys and BullMQ queues; tests use a fresh one each. */
  prefix: string;
}

export function redisConfigFromEnv(env: NodeJS.ProcessEnv = process.env): RedisConfig {
  return {
    url: env.XSM_REDIS_URL ?? 'redis://127.0.0.1:6379',
    prefix: env.XSM_PREFIX ?? 'xsm',
  };
}

/** A connection suitable for BullMQ workers too (maxRetriesPerRequest: null is what BullMQ requires). */
export function connectRedis(config: RedisConfig, extra: RedisOptions = {}): Redis {
  return new Redis(config.url, { maxRetriesPerRequest: null, lazyConnect: false, ...extra });
}

/**
 * Connection options (not a connection) for a BullMQ Worker. Given options, BullMQ opens and closes the
 * connection itself, in step with its own background work (stalled-job checks, the version probe); a
 * connection handed to it is never closed and would keep the process alive after worker.close().
 */
export function workerConnectionOptions(config: RedisConfig): RedisOptions {
  const u = new URL(config.url);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`XSM_REDIS_URL ${config.url}: expected redis://host:port[/db] or rediss://`);
  const db = u.pathname.replace(/^\//, '');
  return {
    host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db ? { db: Number(db) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
  };
}

/**
 * Closes a BullMQ worker, queue or flow producer only once it has finished connecting: BullMQ sends
 * INFO as each connection opens, and closing under it leaves a rejected promise that nobody awaits.
 */
export async function closeWhenReady(handle: { waitUntilReady(): Promise<unknown>; close(): Promise<void> }): Promise<void> {
  await handle.waitUntilReady().catch(() => {});
  await handle.close();
}
