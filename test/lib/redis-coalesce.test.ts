import test from 'ava';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { connectRedis, redisConfigFromEnv } from '../../src/lib/redis.ts';

/** Counts the socket's writes as they reach the system: one per `_write`, one per `_writev` (a corked batch). */
function countWrites(socket: Socket): { writes: number } {
  const count = { writes: 0 };
  const s = socket as unknown as Record<'_write' | '_writev', (...a: unknown[]) => unknown>;
  for (const m of ['_write', '_writev'] as const) {
    const orig = s[m].bind(socket);
    s[m] = (...a: unknown[]) => {
      count.writes++;
      return orig(...a);
    };
  }
  return count;
}

test('commands issued in one turn leave in one socket write, in the order issued, pipelines and transactions included', async (t) => {
  const redis = connectRedis(redisConfigFromEnv());
  t.teardown(() => redis.disconnect());
  await redis.ping();
  const key = `xsm-test-coalesce-${randomBytes(4).toString('hex')}`;
  t.teardown(() => redis.del(key, `${key}:list`).then(() => undefined));
  const count = countWrites(redis.stream as Socket);
  const replies = Promise.all([
    ...Array.from({ length: 10 }, () => redis.incr(key)),
    redis.multi().incr(key).rpush(`${key}:list`, 'in a transaction').exec(),
    redis.pipeline().incr(key).get(key).exec(),
    redis.incr(key),
  ]);
  const got = await replies;
  t.deepEqual(got.slice(0, 10), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  t.deepEqual(got[10], [
    [null, 11],
    [null, 1],
  ]);
  t.deepEqual(got[11], [
    [null, 12],
    [null, '12'],
  ]);
  t.is(got[12], 13);
  t.is(count.writes, 1, 'one system write for the whole turn');
  // The next turn's command is not held back by the last one.
  t.is(await redis.incr(key), 14);
  t.is(count.writes, 2);
});
