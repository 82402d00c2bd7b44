// Where Redis is: read once from the environment. Every process (API, agents, workers, CLI) uses this.
//   XSM_REDIS_URL            redis://[user:pass@]host:port[/db] or rediss:// (default redis://127.0.0.1:6379)
//   XSM_REDIS_SENTINELS      "host:port,host:port,...": find the master through Redis Sentinel instead;
//                            XSM_REDIS_URL then only supplies credentials, db and TLS (its host is unused)
//   XSM_REDIS_SENTINEL_NAME  the master's name in the sentinels' configuration (default mymaster)
//   XSM_PREFIX               key prefix (default xsm); on Redis Cluster wrap it in a hash tag, e.g. {xsm}

import type { RedisOptions as BullMQRedisOptions } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';

export interface SentinelAddress {
  host: string;
  port: number;
}

export interface RedisConfig {
  url: string;
  /** Key prefix for XSM's own keys and BullMQ queues; tests use a fresh one each. */
  prefix: string;
  /** When set, the master is found through these sentinels; `url` then only gives credentials, db and TLS. */
  sentinels?: SentinelAddress[];
  /** The master's name known to the sentinels (XSM_REDIS_SENTINEL_NAME, default mymaster). */
  sentinelName?: string;
}

/** Parses XSM_REDIS_SENTINELS: "host:port,host:port", IPv6 as "[::1]:26379". Throws naming the variable. */
export function parseSentinels(spec: string, variable = 'XSM_REDIS_SENTINELS'): SentinelAddress[] {
  const bad = (why: string): never => {
    throw new Error(
      `${variable}=${JSON.stringify(spec)}: ${why}; expected host:port[,host:port...], e.g. sentinel-1:26379,sentinel-2:26379`,
    );
  };
  const out: SentinelAddress[] = [];
  for (const raw of spec.split(',')) {
    const entry = raw.trim();
    if (!entry) bad('an entry is empty');
    const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(entry);
    if (!m) bad(`"${entry}" is not host:port`);
    const port = Number(m![3]);
    if (port < 1 || port > 65535) bad(`"${entry}": port ${port} is out of range`);
    out.push({ host: m![1] ?? m![2]!, port });
  }
  return out;
}

export function redisConfigFromEnv(env: NodeJS.ProcessEnv = process.env): RedisConfig {
  const config: RedisConfig = {
    url: env.XSM_REDIS_URL ?? 'redis://127.0.0.1:6379',
    prefix: env.XSM_PREFIX ?? 'xsm',
  };
  const sentinels = env.XSM_REDIS_SENTINELS?.trim();
  if (sentinels) {
    config.sentinels = parseSentinels(sentinels);
    const name = env.XSM_REDIS_SENTINEL_NAME?.trim() || 'mymaster';
    if (/[\s,]/.test(name))
      throw new Error(`XSM_REDIS_SENTINEL_NAME=${JSON.stringify(name)}: a master name has no spaces or commas`);
    config.sentinelName = name;
  }
  return config;
}

/**
 * Milliseconds before reconnect attempt `times`: soon at first, then every 2 s at most (plus up to 200 ms
 * of jitter, so a site's agents do not all knock at once). ioredis 6 waits up to 5 s and BullMQ up to 20 s,
 * which is how long work would stand still after Redis is back.
 */
export function reconnectDelay(times: number): number {
  return Math.min(times * 100, 2000) + Math.floor(Math.random() * 200);
}

/**
 * A connection suitable for BullMQ workers too (maxRetriesPerRequest: null is what BullMQ requires), whose
 * commands issued in one turn of the event loop leave in one socket write (coalesceWrites).
 */
export function connectRedis(config: RedisConfig, extra: RedisOptions = {}): Redis {
  const redis = config.sentinels
    ? new Redis({ ...workerConnectionOptions(config), lazyConnect: false, ...extra })
    : new Redis(config.url, {
        maxRetriesPerRequest: null,
        retryStrategy: reconnectDelay,
        lazyConnect: false,
        ...extra,
      });
  return coalesceWrites(redis);
}

/**
 * Sends the commands `redis` is given in one turn of the event loop in one socket write, in the order they
 * were given: the first command of a turn corks the socket and the end of the turn uncorks it. ioredis
 * writes each command as it comes, one system call each, and a process with many concurrent jobs (a host
 * agent, the agents of a benchmark sharing one process) issues several per turn whenever Redis answers
 * several at once; those system calls were a large part of an agent's CPU in the apply benchmark. Unlike
 * ioredis' auto-pipelining, nothing is reordered: every write still goes through the one socket in order,
 * transactions and pipelines included; only when the bytes leave changes (at most one turn later).
 */
export function coalesceWrites(redis: Redis): Redis {
  const send = redis.sendCommand.bind(redis);
  let corked = false;
  redis.sendCommand = (...args: Parameters<Redis['sendCommand']>) => {
    const socket = redis.stream as Redis['stream'] | undefined;
    if (!corked && socket?.writable) {
      corked = true;
      socket.cork();
      process.nextTick(() => {
        corked = false;
        socket.uncork();
      });
    }
    return send(...args);
  };
  return redis;
}

/**
 * ioredis options in the shape BullMQ 6 accepts as a `connection`: ioredis 6 allows `retryStrategy: null`
 * (never reconnect), which BullMQ's option type leaves out; a worker must keep reconnecting anyway.
 */
export type WorkerConnectionOptions = Omit<RedisOptions, 'retryStrategy'> & Pick<BullMQRedisOptions, 'retryStrategy'>;

/**
 * Connection options (not a connection) for a BullMQ Worker. Given options, BullMQ opens and closes the
 * connection itself, in step with its own background work (stalled-job checks, the version probe); a
 * connection handed to it is never closed and would keep the process alive after worker.close().
 */
export function workerConnectionOptions(config: RedisConfig): WorkerConnectionOptions {
  const u = new URL(config.url);
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:')
    throw new Error(`XSM_REDIS_URL ${config.url}: expected redis://host:port[/db] or rediss://`);
  const db = u.pathname.replace(/^\//, '');
  const common: WorkerConnectionOptions = {
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db ? { db: Number(db) } : {}),
    maxRetriesPerRequest: null,
    // BullMQ's own backoff grows to 20 s between attempts, so a worker came back up to 20 s after Redis
    // did; retry as the process's main connection does.
    retryStrategy: reconnectDelay,
  };
  if (config.sentinels) {
    return {
      sentinels: config.sentinels.map((s) => ({ ...s })),
      name: config.sentinelName ?? 'mymaster',
      ...common,
      // rediss:// asks for TLS to the master and replicas the sentinels name.
      ...(u.protocol === 'rediss:' ? { tls: {}, enableTLSForSentinelMode: true } : {}),
    };
  }
  return {
    host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    ...common,
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/**
 * Closes a BullMQ worker, queue or flow producer only once it has finished connecting: BullMQ sends
 * INFO as each connection opens, and closing under it leaves a rejected promise that nobody awaits.
 */
export async function closeWhenReady(handle: {
  waitUntilReady(): Promise<unknown>;
  close(): Promise<void>;
}): Promise<void> {
  await handle.waitUntilReady().catch(() => {});
  await handle.close();
}

/**
 * Removes every key under `prefix:` (a test's or a benchmark's own keyspace), by SCAN and UNLINK so a
 * large keyspace never blocks Redis. Returns how many keys went.
 */
export async function deleteKeysByPrefix(config: RedisConfig, prefix: string): Promise<number> {
  const r = connectRedis(config);
  let cursor = '0';
  let n = 0;
  try {
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 5000);
      cursor = next;
      if (keys.length) n += await r.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    await r.quit();
  }
  return n;
}
