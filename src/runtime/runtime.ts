// The handles every XSM process shares: one Redis connection for commands, every store of shared state, and
// queues created on demand. Built once per process in a workers/*.ts entry point and passed down. Code above
// src/state/ reaches Redis only through these stores: every key is spelled in src/state/.

import { bullmqTelemetry } from '../lib/tracing.ts';
import { FlowProducer, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { closeWhenReady, connectRedis, deleteKeysByPrefix, type RedisConfig } from '../lib/redis.ts';
import { upgradeQueueData, type QueueDataReport } from '../state/queue-data.ts';
import { redisStores, type Stores } from '../state/stores.ts';
import { createLogger, type Logger } from '../lib/log.ts';
import { RedisHealth } from './redis-health.ts';
import { errorMessage } from '../lib/errors.ts';
import { CONTROL_QUEUE, hostQueueName } from './queues.ts';

export class XsmRuntime implements Stores {
  readonly redis: Redis;
  readonly sites: Stores['sites'];
  readonly observed: Stores['observed'];
  readonly applies: Stores['applies'];
  readonly metrics: Stores['metrics'];
  readonly events: Stores['events'];
  readonly failover: Stores['failover'];
  readonly fence: Stores['fence'];
  readonly deploys: Stores['deploys'];
  readonly cooldowns: Stores['cooldowns'];
  readonly leases: Stores['leases'];
  readonly migrationSlots: Stores['migrationSlots'];
  readonly migrations: Stores['migrations'];
  readonly manualPower: Stores['manualPower'];
  readonly audit: Stores['audit'];
  readonly sessions: Stores['sessions'];
  readonly recovery: Stores['recovery'];
  readonly flows: FlowProducer;
  /** Whether Redis is up; says each outage once, and tells worker supervisors when it is back. */
  readonly health: RedisHealth;
  private readonly queues = new Map<string, Queue>();

  constructor(
    readonly config: RedisConfig,
    private readonly log: Logger = createLogger({ component: 'redis' }),
  ) {
    this.redis = connectRedis(config);
    this.health = new RedisHealth(this.redis, log);
    const stores = redisStores(this.redis, config.prefix);
    this.sites = stores.sites;
    this.observed = stores.observed;
    this.applies = stores.applies;
    this.metrics = stores.metrics;
    this.events = stores.events;
    this.failover = stores.failover;
    this.fence = stores.fence;
    this.deploys = stores.deploys;
    this.cooldowns = stores.cooldowns;
    this.leases = stores.leases;
    this.migrationSlots = stores.migrationSlots;
    this.migrations = stores.migrations;
    this.manualPower = stores.manualPower;
    this.audit = stores.audit;
    this.sessions = stores.sessions;
    this.recovery = stores.recovery;
    this.flows = new FlowProducer({ connection: this.redis, prefix: config.prefix, ...bullmqTelemetry() });
    this.flows.on('error', (e) => this.handleError('flow producer', e));
  }

  queue(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.redis, prefix: this.config.prefix, ...bullmqTelemetry() });
      q.on('error', (e) => this.handleError(`queue ${name}`, e));
      this.queues.set(name, q);
    }
    return q;
  }
  /** A BullMQ error: said unless an outage, already said once by `health`, explains it. */
  private handleError(what: string, e: unknown): void {
    if (!this.health.down) this.log.error(`${what} error`, { error: errorMessage(e) });
  }
  control(): Queue {
    return this.queue(CONTROL_QUEUE);
  }
  hostQueue(host: string): Queue {
    return this.queue(hostQueueName(host));
  }
  /** Every queue XSM knows of: control plus one per host seen in the site or reporting. */
  async allQueues(): Promise<Queue[]> {
    const hosts = new Set<string>(Object.keys((await this.observed.all()).hosts));
    const v = await this.sites.currentVersion();
    if (v) for (const h of (await this.sites.load(v)).site.hosts) hosts.add(h.name);
    return [this.control(), ...[...hosts].sort().map((h) => this.hostQueue(h))];
  }
  /** Redis answers (the API's readiness check). */
  async ping(): Promise<void> {
    await this.redis.ping();
  }
  /** Brings BullMQ 5 queue data forward, or refuses (changing nothing); every process runs it before its workers. */
  upgradeQueueData(log?: Logger): Promise<QueueDataReport> {
    return upgradeQueueData(this.redis, this.config.prefix, log);
  }
  /**
   * Removes every key of this runtime's prefix: the demo's cleanup, never a real site's. Metrics recorded but
   * not yet written (up to 250 ms of them, see EventMetrics) are written first: close() would otherwise write
   * them after the wipe and leave their keys behind.
   */
  async wipe(): Promise<number> {
    await this.events.flush();
    return deleteKeysByPrefix(this.config, this.config.prefix);
  }
  async close(): Promise<void> {
    this.health.stop();
    await this.events.flush();
    await Promise.all([...this.queues.values(), this.flows].map((q) => closeWhenReady(q)));
    await this.redis.quit().catch(() => {});
  }
}
