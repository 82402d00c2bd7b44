// The handles every XSM process shares: one Redis connection for commands, the stores, and queues
// created on demand. Built once per process in a workers/*.ts entry point and passed down.

import { bullmqTelemetry } from '../lib/tracing.ts';
import { FlowProducer, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { closeWhenReady, connectRedis, type RedisConfig } from '../lib/redis.ts';
import { ApplyStore } from '../state/apply-store.ts';
import { ObservedStore } from '../state/observed-store.ts';
import { SiteStore } from '../state/site-store.ts';
import { CONTROL_QUEUE, hostQueueName } from './queues.ts';

export class XsmRuntime {
  readonly redis: Redis;
  readonly sites: SiteStore;
  readonly observed: ObservedStore;
  readonly applies: ApplyStore;
  readonly flows: FlowProducer;
  private readonly queues = new Map<string, Queue>();

  constructor(readonly config: RedisConfig) {
    this.redis = connectRedis(config);
    this.sites = new SiteStore(this.redis, config.prefix);
    this.observed = new ObservedStore(this.redis, config.prefix);
    this.applies = new ApplyStore(this.redis, config.prefix);
    this.flows = new FlowProducer({ connection: this.redis, prefix: config.prefix, ...bullmqTelemetry() });
  }

  queue(name: string): Queue {
    let q = this.queues.get(name);
    if (!q)
      this.queues.set(
        name,
        (q = new Queue(name, { connection: this.redis, prefix: this.config.prefix, ...bullmqTelemetry() })),
      );
    return q;
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
  async close(): Promise<void> {
    await Promise.all([...this.queues.values(), this.flows].map((q) => closeWhenReady(q)));
    await this.redis.quit().catch(() => {});
  }
}
