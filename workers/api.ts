// Entry point of the HTTP API (and, by default, the control worker that turns applied versions into
// jobs): `tsx workers/api.ts`. Any host may run it, several at once; all state is in Redis.
//   XSM_API_PORT (default 8080), XSM_API_BIND (default 127.0.0.1; 0.0.0.0 to serve the site network)
//   XSM_TOKENS="token:role,..." or XSM_TOKENS_FILE (lines "TOKEN ROLE [NAME]"); roles viewer|operator|admin
//   XSM_CONTROL=0 to serve the API only (run the control worker elsewhere)
//   XSM_FAILOVER_CHECK_S (default 5; 0 = off): host health check; XSM_SUSPECT_AFTER_S (20), XSM_FENCE_AFTER_S (20)
//   XSM_REBALANCE_EVERY_MIN (unset: keep the schedule set through the API; 0 = off),
//   XSM_REBALANCE_MODE (performance|density), XSM_REBALANCE_ACT_ABOVE / XSM_REBALANCE_STOP_BELOW (hysteresis
//   thresholds on imbalance, default 0.1 / 0.05)
//   XSM_SECRETS_DIR (default /etc/xsm/secrets), XSM_QMP_DIR (default /run/xsm/qmp): where <Power> may point;
//   XSM_POWER_ALLOW_LOCAL=1 (lab only): BMCs on loopback or link-local addresses
//   XSM_VM_LIST_THREAD (default 1; 0 = build GET /api/vms on the event loop instead of a worker thread)
//   XSM_REDIS_URL, XSM_PREFIX

import { startTracing } from '../src/lib/tracing.ts';
import { tokensFromEnv } from '../src/api/auth.ts';
import { powerPolicyFromEnv } from '../src/site/power-policy.ts';
import { startApi } from '../src/api/listen.ts';
import { vmListThreadFromEnv } from '../src/api/server.ts';
import { XsmRuntime } from '../src/runtime/runtime.ts';
import { errorMessage } from '../src/lib/errors.ts';
import { createLogger } from '../src/lib/log.ts';
import { closeWhenReady, redisConfigFromEnv } from '../src/lib/redis.ts';
import { startControlWorker } from './control-lib.ts';
import { DEFAULT_FAILOVER_POLICY, scheduleFailoverCheck } from '../src/services/health-check.ts';
import { REBALANCE_DEFAULTS, scheduleRebalance } from '../src/services/rebalance-service.ts';

function fail(message: string): never {
  process.stderr.write(`xsm api: ${message}\n`);
  process.exit(2);
}

function envNumber(name: string, dflt: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt; // may be -1: "not given"
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0) fail(`${name}=${raw} is not a non-negative number`);
  return n;
}

const log = createLogger({ component: 'api' });
// Before any queue or worker exists: they take BullMQ's telemetry when they are made.
if (await startTracing('xsm-api'))
  log.info('exporting traces over OTLP', { endpoint: process.env.OTEL_EXPORTER_OTLP_ENDPOINT });
let tokens;
try {
  tokens = tokensFromEnv();
} catch (e) {
  fail(e instanceof Error ? e.message : String(e));
}
try {
  vmListThreadFromEnv(); // read again by the API; a malformed setting stops the process here
  powerPolicyFromEnv(); // site files and fencing read it; a malformed setting stops the process here
} catch (e) {
  fail(e instanceof Error ? e.message : String(e));
}
if (tokens.size === 0)
  fail('no API tokens: set XSM_TOKENS="TOKEN:admin" (e.g. TOKEN from `openssl rand -hex 24`) or XSM_TOKENS_FILE');
const port = Number(process.env.XSM_API_PORT ?? 8080);
if (!Number.isInteger(port) || port < 0 || port > 65535)
  fail(`XSM_API_PORT=${process.env.XSM_API_PORT} is not a port number`);
const rt = new XsmRuntime(redisConfigFromEnv(), log);
await rt.upgradeQueueData(log).catch((e: unknown) => fail(errorMessage(e)));
const control = process.env.XSM_CONTROL === '0' ? undefined : startControlWorker(rt, log);
if (control) {
  // Job schedulers live in Redis, one per site: every API/control process may upsert them, the jobs run once.
  const checkS = envNumber('XSM_FAILOVER_CHECK_S', 5);
  if (checkS > 0)
    await scheduleFailoverCheck(rt, checkS * 1000, {
      suspectAfterMs: envNumber('XSM_SUSPECT_AFTER_S', DEFAULT_FAILOVER_POLICY.suspectAfterMs / 1000) * 1000,
      fenceAfterMs: envNumber('XSM_FENCE_AFTER_S', DEFAULT_FAILOVER_POLICY.fenceAfterMs / 1000) * 1000,
    });
  else await rt.control().removeJobScheduler('failover-check');
  // Unset leaves the schedule as it is (it may have been set through the API); 0 removes it.
  const rebalanceMin = envNumber('XSM_REBALANCE_EVERY_MIN', -1);
  const mode = process.env.XSM_REBALANCE_MODE === 'density' ? 'density' : 'performance';
  const actAbove = envNumber('XSM_REBALANCE_ACT_ABOVE', REBALANCE_DEFAULTS.actAbove);
  const stopBelow = envNumber('XSM_REBALANCE_STOP_BELOW', REBALANCE_DEFAULTS.stopBelow);
  if (stopBelow > actAbove) fail(`XSM_REBALANCE_STOP_BELOW=${stopBelow} is above XSM_REBALANCE_ACT_ABOVE=${actAbove}`);
  if (rebalanceMin > 0) await scheduleRebalance(rt, rebalanceMin * 60_000, { mode, actAbove, stopBelow });
  else if (rebalanceMin === 0) await rt.control().removeJobScheduler('rebalance');
}
const api = await startApi({ rt, tokens, log, port, bind: process.env.XSM_API_BIND ?? '127.0.0.1' }).catch((e: Error) =>
  fail(`cannot listen: ${e.message}`),
);
log.info('API listening', { url: api.url, control: Boolean(control), tokens: tokens.size });
const stop = async () => {
  await api.close();
  if (control) await closeWhenReady(control);
  await rt.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// SIGHUP re-reads XSM_TOKENS / XSM_TOKENS_FILE: a revoked token stops working without a restart. A file
// that does not parse leaves the tokens as they were, and says why.
process.on('SIGHUP', () => {
  try {
    const next = tokensFromEnv();
    if (next.size === 0) throw new Error('the new tokens file has no tokens');
    tokens.replaceWith(next);
    log.info('API tokens reloaded', { tokens: next.size });
  } catch (e) {
    log.error('API tokens not reloaded; the old ones stay in force', { error: errorMessage(e) });
  }
});
