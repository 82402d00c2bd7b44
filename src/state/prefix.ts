// Everything one XSM installation keeps in Redis lives under its prefix (XSM_PREFIX): stores' keys and
// BullMQ's queues alike. A throwaway site (the demo) removes all of it when it ends.

import type { Redis } from 'ioredis';

function globEscape(s: string): string {
  return s.replace(/[*?[\]\\]/g, '\\$&');
}

/** Deletes every key under `prefix:` (SCAN, never KEYS, so Redis keeps serving); returns how many. */
export async function deleteEverythingUnder(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${globEscape(prefix)}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  return deleted;
}
