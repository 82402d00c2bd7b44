// Entry point of the Ganglia poller: `tsx workers/ganglia-poller.ts`. Any host may run it.
//   XSM_GANGLIA="host:port[,host:port...]"  gmond (8649) or gmetad (8651) endpoints (required)
//   XSM_GANGLIA_INTERVAL_MS (default 15000), XSM_REDIS_URL, XSM_PREFIX

import { parseEndpoint } from '../src/ganglia/client.ts';
import { createLogger } from '../src/lib/log.ts';
import { connectRedis, redisConfigFromEnv } from '../src/lib/redis.ts';
import { MetricsStore } from '../src/state/metrics-store.ts';
import { startGangliaPoller } from './ganglia-poller-lib.ts';

function fail(message: string): never {
  process.stderr.write(`xsm ganglia poller: ${message}\n`);
  process.exit(2);
}

const spec = process.env.XSM_GANGLIA ?? fail('set XSM_GANGLIA to the gmond/gmetad endpoints, e.g. 127.0.0.1:8649');
let endpoints;
try {
  endpoints = spec.split(',').map(parseEndpoint);
} catch (e) {
  fail(e instanceof Error ? e.message : String(e));
}
const interval = Number(process.env.XSM_GANGLIA_INTERVAL_MS ?? 15000);
if (!Number.isInteger(interval) || interval < 1000)
  fail('XSM_GANGLIA_INTERVAL_MS must be a whole number of ms, at least 1000');
const config = redisConfigFromEnv();
const redis = connectRedis(config);
const log = createLogger({ component: 'ganglia-poller' });
const poller = startGangliaPoller(endpoints, new MetricsStore(redis, config.prefix), log, interval);
log.info('polling', { endpoints: spec, intervalMs: interval });
const stop = async () => {
  await poller.close();
  await redis.quit();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
