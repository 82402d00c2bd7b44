// A Lua script that XSM runs at every job (the step journal's fenced write, the observed-state report):
// sent by its SHA1 (EVALSHA) once Redis knows it, whole (EVAL) only when Redis answers NOSCRIPT (its first
// use, or a server restarted, flushed or failed over since). EVAL sends the script's text with every call
// and has Redis hash it again each time.

import { createHash } from 'node:crypto';

/** What a script needs of a Redis client: ioredis, XSM's own connections and BullMQ's alike. */
export interface ScriptClient {
  evalsha(sha1: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
}

export class LuaScript {
  /** The SHA1 Redis knows the script by (SCRIPT LOAD's answer). */
  readonly sha1: string;

  constructor(readonly body: string) {
    this.sha1 = createHash('sha1').update(body).digest('hex');
  }

  /**
   * Runs the script with `keys` and `args`: one EVALSHA, plus one EVAL when Redis did not know it. A
   * NOSCRIPT answer runs nothing, so the script runs exactly once either way.
   */
  async run(redis: ScriptClient, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha1, keys.length, ...keys, ...args);
    } catch (e) {
      if (!(e instanceof Error) || !e.message.startsWith('NOSCRIPT')) throw e;
      return redis.eval(this.body, keys.length, ...keys, ...args);
    }
  }
}
