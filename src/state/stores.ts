// Every store of shared state, as one bundle with two builds: on Redis (what every XSM process runs) and in
// memory (the twins, for tests of services and workflows that need no Redis). Code above src/state/ names a
// store by its shape here, so either build fits; test/state/twins.test.ts holds each pair to one contract.

import type { Redis } from 'ioredis';
import type { ManualPowerRequests } from '../drivers/power/manual.ts';
import { ApplyStore, MemoryApplyStore } from './apply-store.ts';
import { AuditStore, MemoryAuditStore } from './audit-store.ts';
import { MemoryCooldownStore, RedisCooldownStore, type CooldownStore } from './cooldown-store.ts';
import { MemoryDeployStore, RedisDeployStore, type DeployStore } from './deploy-store.ts';
import { EventMetrics, MemoryEventMetrics } from './event-metrics-store.ts';
import { MemoryLeaseStore, RedisLeaseStore, type LeaseStore } from './lease-store.ts';
import {
  MemoryMigrationHistoryStore,
  RedisMigrationHistoryStore,
  type MigrationHistoryStore,
} from './migration-history-store.ts';
import { MemoryMigrationSlotStore, RedisMigrationSlotStore, type MigrationSlotStore } from './migration-slot-store.ts';
import { MemoryFailoverStore, RedisFailoverStore, type FailoverStore } from './failover-store.ts';
import { MemoryFenceStore, RedisFenceStore, type FenceStore } from './fence-store.ts';
import { MemoryManualPowerStore, RedisManualPowerStore } from './manual-power-store.ts';
import { MemoryMetricsStore, MetricsStore } from './metrics-store.ts';
import { MemoryObservedStore, ObservedStore } from './observed-store.ts';
import { MemoryRecoveryStore, RedisRecoveryStore, type RecoveryStore } from './recovery-store.ts';
import { MemorySessionStore, SessionStore } from './session-store.ts';
import { MemorySiteStore, SiteStore } from './site-store.ts';

/** A class's public face: what a caller may use, so a twin with other private parts fits the same type. */
export type Public<T> = { [K in keyof T]: T[K] };

export interface Stores {
  /** Site versions (the desired state) with their plans. */
  sites: Public<SiteStore>;
  /** What each host's agent last reported. */
  observed: Public<ObservedStore>;
  /** What each version's apply did, action by action. */
  applies: Public<ApplyStore>;
  /** Ganglia's metrics as the poller stored them. */
  metrics: Public<MetricsStore>;
  /** Counters and histograms of events (jobs, steps, submits) for /metrics. */
  events: Public<EventMetrics>;
  failover: FailoverStore;
  /** Fencing epochs and self-fence leases. */
  fence: FenceStore;
  deploys: DeployStore;
  cooldowns: CooldownStore;
  /** Single-writer leases (only one rebalancer acts at a time). */
  leases: LeaseStore;
  /** Live migrations running now, held to the site's concurrency limits. */
  migrationSlots: MigrationSlotStore;
  /** Every migration made or tried: why, predicted gain, outcome, duration. */
  migrations: MigrationHistoryStore;
  manualPower: ManualPowerRequests;
  /** Who changed what, when, from where, and how it ended. */
  audit: Public<AuditStore>;
  /** Console and dashboard login sessions. */
  sessions: Public<SessionStore>;
  /** `xsm recover`'s request for the agents' site copies, and their answers. */
  recovery: RecoveryStore;
}

/** Settings of the stores that keep things for a while; each defaults to its environment variable. */
export interface StoreOptions {
  /** How long the audit log keeps an entry (XSM_AUDIT_DAYS); tests may give a fraction of a day. */
  auditRetentionDays?: number;
  /** How long a login session lives (XSM_SESSION_HOURS). */
  sessionTtlSec?: number;
}

export function redisStores(redis: Redis, prefix: string, opts: StoreOptions = {}): Stores {
  return {
    sites: new SiteStore(redis, prefix),
    observed: new ObservedStore(redis, prefix),
    applies: new ApplyStore(redis, prefix),
    metrics: new MetricsStore(redis, prefix),
    events: new EventMetrics(redis, prefix),
    failover: new RedisFailoverStore(redis, prefix),
    fence: new RedisFenceStore(redis, prefix),
    deploys: new RedisDeployStore(redis, prefix),
    cooldowns: new RedisCooldownStore(redis, prefix),
    leases: new RedisLeaseStore(redis, prefix),
    migrationSlots: new RedisMigrationSlotStore(redis, prefix),
    migrations: new RedisMigrationHistoryStore(redis, prefix),
    manualPower: new RedisManualPowerStore(redis, prefix),
    audit: new AuditStore(redis, prefix, opts.auditRetentionDays),
    sessions: new SessionStore(redis, prefix, opts.sessionTtlSec),
    recovery: new RedisRecoveryStore(redis, prefix),
  };
}

/**
 * Fresh, empty twins; `now` drives the ones that expire or stamp entries (cooldowns, leases, migration slots and
 * history, audit log, sessions).
 */
export function memoryStores(now: () => number = Date.now, opts: StoreOptions = {}): Stores {
  return {
    sites: new MemorySiteStore(),
    observed: new MemoryObservedStore(),
    applies: new MemoryApplyStore(),
    metrics: new MemoryMetricsStore(),
    events: new MemoryEventMetrics(),
    failover: new MemoryFailoverStore(),
    fence: new MemoryFenceStore(now),
    deploys: new MemoryDeployStore(),
    cooldowns: new MemoryCooldownStore(now),
    leases: new MemoryLeaseStore(now),
    migrationSlots: new MemoryMigrationSlotStore(now),
    migrations: new MemoryMigrationHistoryStore(now),
    manualPower: new MemoryManualPowerStore(),
    audit: new MemoryAuditStore(now, opts.auditRetentionDays),
    sessions: new MemorySessionStore(now, opts.sessionTtlSec),
    recovery: new MemoryRecoveryStore(),
  };
}
