// Whether the process's Redis is up, read from its main ioredis connection: an outage is said once when it
// starts (with the error) and once when it ends (with how long it lasted), never once per reconnect attempt,
// and without this listener ioredis prints "[ioredis] Unhandled error event" on every failed attempt.
// Worker supervisors listen for 'back' to replace the BullMQ workers an outage left parked.

import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { Logger } from '../lib/log.ts';
import { errorMessage } from '../lib/errors.ts';

/** Events: 'down' (error message) as an outage starts, 'back' (milliseconds it lasted) once Redis is ready again. */
export interface RedisHealthEvents {
  down: [error: string];
  back: [downMs: number];
}

export class RedisHealth extends EventEmitter<RedisHealthEvents> {
  private downSince?: number;
  private lastError = '';
  /** Outages seen since the process started (each one counted once). */
  outages = 0;

  constructor(
    private readonly redis: Redis,
    private readonly log: Logger,
    private readonly where = 'Redis',
  ) {
    super();
    // One listener per supervised worker: a process hosting many hosts' agents (the simulator, a scale
    // run) holds hundreds, which is by design, not a leak.
    this.setMaxListeners(0);
    // A connection error while the connection is ready is not an outage; ioredis closes it first if it is one.
    redis.on('error', (e: unknown) => (redis.status === 'ready' ? undefined : this.lost(errorMessage(e))));
    redis.on('close', () => this.lost(this.lastError || 'connection closed'));
    redis.on('ready', () => this.ready());
  }

  private stopped = false;

  /** The process closes the connection on purpose: what follows is no outage. */
  stop(): void {
    this.stopped = true;
  }

  /** True while the connection is lost and not yet ready again. */
  get down(): boolean {
    return this.downSince !== undefined;
  }

  private lost(error: string): void {
    this.lastError = error;
    // quit() at shutdown closes the connection on purpose: that is no outage.
    if (this.downSince !== undefined || this.stopped || this.redis.status === 'end' || this.closing()) return;
    this.downSince = Date.now();
    this.outages++;
    this.log.error(`${this.where} unreachable; retrying until it is back`, { error });
    this.emit('down', error);
  }

  private closing(): boolean {
    return (this.redis as unknown as { manuallyClosing?: boolean }).manuallyClosing === true;
  }

  private ready(): void {
    if (this.downSince === undefined) return;
    const downMs = Date.now() - this.downSince;
    this.downSince = undefined;
    this.lastError = '';
    this.log.warn(`${this.where} is back`, { downMs });
    this.emit('back', downMs);
  }
}
