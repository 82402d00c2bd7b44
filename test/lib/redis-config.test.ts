// The Redis configuration read from the environment: a plain URL (as always) or Redis Sentinel. No
// Redis or sentinel is contacted here; only the parsed config and the ioredis options are checked.

import test from 'ava';
import {
  parseSentinels,
  reconnectDelay,
  redisConfigFromEnv,
  workerConnectionOptions as withRetry,
} from '../../src/lib/redis.ts';

/** The options without their retry function (deepEqual cannot compare functions; it has its own test). */
const workerConnectionOptions = (...a: Parameters<typeof withRetry>) => {
  const { retryStrategy: _retry, ...rest } = withRetry(...a);
  return rest;
};

test("workers reconnect at most 2.2 s apart, not after BullMQ's growing backoff of up to 20 s", (t) => {
  for (const env of [{}, { XSM_REDIS_SENTINELS: 's1:26379' }]) {
    const retry = withRetry(redisConfigFromEnv(env)).retryStrategy!;
    t.is(retry, reconnectDelay);
  }
  const around = (times: number, ms: number) => {
    const d = reconnectDelay(times);
    t.true(d >= ms && d < ms + 200, `attempt ${times}: ${d} ms`);
  };
  around(1, 100);
  around(10, 1000);
  around(1000, 2000);
});

test('defaults: local Redis, prefix xsm, no sentinels', (t) => {
  const c = redisConfigFromEnv({});
  t.deepEqual(c, { url: 'redis://127.0.0.1:6379', prefix: 'xsm' });
  t.deepEqual(workerConnectionOptions(c), { host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null });
});

test('XSM_REDIS_URL: host, port, credentials, db and TLS reach the worker options', (t) => {
  const c = redisConfigFromEnv({ XSM_REDIS_URL: 'rediss://xsm:s%3Acret@redis.example:6380/2', XSM_PREFIX: 'site1' });
  t.is(c.url, 'rediss://xsm:s%3Acret@redis.example:6380/2');
  t.is(c.prefix, 'site1');
  t.is(c.sentinels, undefined);
  t.deepEqual(workerConnectionOptions(c), {
    host: 'redis.example',
    port: 6380,
    username: 'xsm',
    password: 's:cret',
    db: 2,
    tls: {},
    maxRetriesPerRequest: null,
  });
});

test('XSM_REDIS_URL with an IPv6 address', (t) => {
  const o = workerConnectionOptions(redisConfigFromEnv({ XSM_REDIS_URL: 'redis://[::1]:6379' }));
  t.is(o.host, '::1');
  t.is(o.port, 6379);
});

test('XSM_REDIS_URL of another scheme is refused, naming the variable', (t) => {
  const e = t.throws(() => workerConnectionOptions(redisConfigFromEnv({ XSM_REDIS_URL: 'http://redis:6379' })));
  t.regex(e!.message, /XSM_REDIS_URL/);
});

test('XSM_REDIS_SENTINELS: sentinels and master name, default mymaster', (t) => {
  const c = redisConfigFromEnv({ XSM_REDIS_SENTINELS: 'sentinel-1:26379, sentinel-2:26379,[fd00::3]:26380' });
  t.deepEqual(c.sentinels, [
    { host: 'sentinel-1', port: 26379 },
    { host: 'sentinel-2', port: 26379 },
    { host: 'fd00::3', port: 26380 },
  ]);
  t.is(c.sentinelName, 'mymaster');
  const o = workerConnectionOptions(c);
  t.deepEqual(o, {
    sentinels: [
      { host: 'sentinel-1', port: 26379 },
      { host: 'sentinel-2', port: 26379 },
      { host: 'fd00::3', port: 26380 },
    ],
    name: 'mymaster',
    maxRetriesPerRequest: null,
  });
  t.is(o.host, undefined, 'no fixed master address with sentinels');
});

test('XSM_REDIS_SENTINEL_NAME, and credentials/db from XSM_REDIS_URL, with sentinels', (t) => {
  const c = redisConfigFromEnv({
    XSM_REDIS_SENTINELS: '10.0.0.1:26379',
    XSM_REDIS_SENTINEL_NAME: 'xsm-master',
    XSM_REDIS_URL: 'redis://:pw@ignored:6379/3',
    XSM_PREFIX: '{xsm}',
  });
  t.is(c.sentinelName, 'xsm-master');
  t.is(c.prefix, '{xsm}');
  const o = workerConnectionOptions(c);
  t.is(o.name, 'xsm-master');
  t.is(o.password, 'pw');
  t.is(o.db, 3);
  t.is(o.maxRetriesPerRequest, null, 'BullMQ workers need maxRetriesPerRequest: null');
  t.is(o.host, undefined);
});

test('rediss:// with sentinels asks for TLS to the master', (t) => {
  const o = workerConnectionOptions(
    redisConfigFromEnv({ XSM_REDIS_SENTINELS: 's1:26379', XSM_REDIS_URL: 'rediss://r:6379' }),
  );
  t.deepEqual(o.tls, {});
  t.true(o.enableTLSForSentinelMode);
});

test('an empty XSM_REDIS_SENTINELS is the same as unset', (t) => {
  t.is(redisConfigFromEnv({ XSM_REDIS_SENTINELS: '  ' }).sentinels, undefined);
});

for (const bad of [
  'sentinel-1',
  'sentinel-1:',
  'sentinel-1:26379,',
  's1:26379,,s2:26379',
  's1:0',
  's1:70000',
  's1:port',
  'redis://s1:26379',
  'a b:26379',
]) {
  test(`a malformed XSM_REDIS_SENTINELS (${JSON.stringify(bad)}) is refused, naming the variable`, (t) => {
    const e = t.throws(() => redisConfigFromEnv({ XSM_REDIS_SENTINELS: bad }));
    t.regex(e!.message, /^XSM_REDIS_SENTINELS=/);
    t.regex(e!.message, /host:port/);
  });
}

test('a master name with a comma is refused, naming the variable', (t) => {
  const e = t.throws(() => redisConfigFromEnv({ XSM_REDIS_SENTINELS: 's1:26379', XSM_REDIS_SENTINEL_NAME: 'a,b' }));
  t.regex(e!.message, /XSM_REDIS_SENTINEL_NAME/);
});

test('parseSentinels names the variable it was given', (t) => {
  const e = t.throws(() => parseSentinels('nope', 'SOME_VAR'));
  t.regex(e!.message, /^SOME_VAR=/);
});
