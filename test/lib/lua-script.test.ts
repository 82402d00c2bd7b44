// A script run by its SHA1: exactly once per call whether Redis knew it or not, by EVALSHA alone once it
// does, and with Redis' own errors passed on.

import test from 'ava';
import { Redis } from 'ioredis';
import { LuaScript } from '../../src/lib/lua-script.ts';
import { redisConfigFromEnv } from '../../src/lib/redis.ts';
import { privateRedis } from '../../bench/private-redis.ts';

// A redis-server of this file's own: the test flushes its scripts and counts its commands.
let stopRedis: () => void = () => {};
test.before(async () => {
  stopRedis = await privateRedis();
});
test.after.always(() => stopRedis());

async function calls(redis: Redis): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const m of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
    if (!m[1]!.startsWith('config') && m[1] !== 'info' && m[1] !== 'script') out[m[1]!] = Number(m[2]);
  return out;
}

test.serial('runs once by EVAL when Redis does not know it, then by EVALSHA alone', async (t) => {
  const redis = new Redis(redisConfigFromEnv().url);
  t.teardown(() => redis.quit());
  const incr = new LuaScript(`return redis.call('INCRBY', KEYS[1], ARGV[1])`);
  await redis.script('FLUSH');
  await redis.del('lua-script:n');
  await redis.config('RESETSTAT');
  t.is(await incr.run(redis, ['lua-script:n'], [2]), 2);
  t.is(await redis.get('lua-script:n'), '2', 'the NOSCRIPT answer ran nothing: one increment');
  t.deepEqual(await calls(redis), { evalsha: 1, eval: 1, incrby: 1, get: 1 });
  await redis.config('RESETSTAT');
  t.is(await incr.run(redis, ['lua-script:n'], [3]), 5);
  t.deepEqual(await calls(redis), { evalsha: 1, incrby: 1 });
  t.is(incr.sha1, (await redis.script('LOAD', incr.body)) as string, "its SHA1 is Redis' own");
});

test.serial("passes the script's own errors on, and runs nothing again for them", async (t) => {
  const redis = new Redis(redisConfigFromEnv().url);
  t.teardown(() => redis.quit());
  const failing = new LuaScript(`redis.call('INCR', KEYS[1]) return redis.call('NOSUCHCOMMAND')`);
  await redis.del('lua-script:m');
  await t.throwsAsync(failing.run(redis, ['lua-script:m'], []), { message: /Unknown Redis command/i });
  t.is(await redis.get('lua-script:m'), '1');
});
