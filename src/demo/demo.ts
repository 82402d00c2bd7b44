// The embedded default (`npm run demo`, `bash scripts/demo`): XSM's main job on a simulated site.
// Four simulated Xen hosts stand in for the paper's four Dom0s (192.168.5.101-104). XSM applies the
// paper's site file (Figure 3), then a changed version (vm1 migrates to .102, vm4 drops to 2 vCPUs live),
// through the same queues, workflows and host agents a real site uses, and prints where each VM runs.
// Uses the Redis at XSM_REDIS_URL under a fresh prefix and removes its keys on the way out: at the end,
// on Ctrl-C and on SIGTERM alike.

import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { PAPER_CONFIG_FILES } from './paper-configs.ts';
import { MemorySimStore, SimulatedXenHost, provisionSimHost } from '../drivers/hypervisor/simulated.ts';
import { XsmRuntime } from '../runtime/runtime.ts';
import { convergedVersion, storedPlan } from '../services/site-service.ts';
import { startApi } from '../api/listen.ts';
import { TokenTable } from '../api/auth.ts';
import { apiClient, type ApiClient } from '../cli/api-client.ts';
import { closeWhenReady, redisConfigFromEnv } from '../lib/redis.ts';
import { createLogger } from '../lib/log.ts';
import { formatPlan, formatTable } from '../site/plan-format.ts';
import { startHostAgent } from '../../workers/host-agent-lib.ts';
import { startControlWorker } from '../../workers/control-lib.ts';
import { simulatedMetricsFeed } from './simulated-metrics.ts';

const USAGE = `usage: npm run demo -- [--serve] [--port N] [--token TOKEN]

Runs XSM on four simulated Xen hosts: applies the paper's site file, then a changed version.
  --serve        keep the API, the console and the simulated site running until Ctrl-C or SIGTERM
  --port N       the API's port on 127.0.0.1 (default: a free one)
  --token TOKEN  the admin token for the API and the console (default: a random one, printed)
  -h, --help     show this help and exit`;

interface DemoOptions {
  serve: boolean;
  port: number;
  token: string;
}

function demoOptions(argv: string[]): DemoOptions {
  let values: { serve?: boolean; port?: string; token?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        serve: { type: 'boolean' },
        port: { type: 'string' },
        token: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    process.stderr.write(`demo: ${(e as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    process.exit(0);
  }
  const portText = values.port ?? process.env.XSM_API_PORT ?? '0';
  const port = /^[0-9]{1,5}$/.test(portText) ? Number(portText) : NaN;
  if (!(port >= 0 && port <= 65535)) {
    process.stderr.write(`demo: --port must be a decimal port number 0-65535, got "${portText}"\n`);
    process.exit(2);
  }
  const token = values.token ?? randomBytes(18).toString('hex');
  if (!/^[A-Za-z0-9._~-]{16,200}$/.test(token)) {
    process.stderr.write('demo: --token must be 16-200 letters, digits or . _ ~ - (it is a bearer token)\n');
    process.exit(2);
  }
  return { serve: values.serve === true, port, token };
}

const options = demoOptions(process.argv.slice(2));
const out = (line = '') => process.stdout.write(line + '\n');
const log = createLogger({ component: 'demo' }, (process.env.XSM_LOG_LEVEL as 'info' | undefined) ?? 'warn');
const prefix = `xsm-demo-${randomBytes(3).toString('hex')}`;
const rt = new XsmRuntime({ ...redisConfigFromEnv(), prefix });
const DOM0S = ['192.168.5.101', '192.168.5.102', '192.168.5.103', '192.168.5.104'];

async function cleanup(): Promise<void> {
  await rt.wipe();
}

async function waitApplied(version: number): Promise<void> {
  const until = Date.now() + 60000;
  while ((await convergedVersion(rt)) < version) {
    if (Date.now() > until)
      throw new Error(`version ${version} was not applied within 60 s; see the failed jobs above`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function placement(hv: Map<string, SimulatedXenHost>): Promise<void> {
  const rows: string[][] = [];
  for (const [host, h] of hv) {
    const info = await h.info();
    for (const d of await h.list())
      if (d.domid !== 0)
        rows.push([
          d.name,
          host,
          String(d.domid),
          d.state,
          String(d.memMiB),
          String(d.vcpus),
          `${info.freeMemMiB} MiB free`,
        ]);
  }
  rows.sort((a, b) => a[0]!.localeCompare(b[0]!));
  out(formatTable(['VM', 'DOM0', 'DOMID', 'STATE', 'MEM MiB', 'VCPUS', 'HOST'], rows));
}

/** Submits through the HTTP API, as `xsm apply` would, and waits until the version is applied. */
async function applyVersion(
  api: ApiClient,
  xml: string,
  reason: string,
  hv: Map<string, SimulatedXenHost>,
): Promise<void> {
  const base = (await api.call<{ version: number }>('GET', '/api/site')).version;
  const started = Date.now();
  const { version, warnings } = await api.call<{ version: number; warnings: { text: string }[] }>(
    'POST',
    `/api/site?base=${base}&reason=${encodeURIComponent(reason)}&file=paper-site.xml`,
    { xml },
  );
  out(`\n== version ${version}: ${reason}`);
  if (warnings.length) out(`   (${warnings.length} warnings, e.g. ${warnings[0]!.text})`);
  await waitApplied(version);
  const plan = await storedPlan(rt, version);
  if (plan) out(formatPlan(plan));
  out(`applied in ${Date.now() - started} ms; where each VM runs now:`);
  await placement(hv);
}

async function main(): Promise<void> {
  const paper = await readFile(new URL('./paper-site.xml', import.meta.url), 'utf8');
  await rt.ping().catch((e: Error) => {
    throw new Error(`cannot reach Redis at ${rt.config.url}: ${e.message} (start one, or set XSM_REDIS_URL)`);
  });
  out("XSM demo: four simulated Xen hosts (2 GiB, 4 CPUs each) as the paper's Dom0s; Redis prefix " + prefix);
  const store = new MemorySimStore();
  const hv = new Map<string, SimulatedXenHost>();
  for (const name of DOM0S) {
    // Each Dom0 holds the paper's two config files, as the paper's site assumes.
    await provisionSimHost(store, {
      name,
      totalMemMiB: 2048,
      dom0MemMiB: 512,
      nrCpus: 4,
      configFiles: PAPER_CONFIG_FILES,
    });
    hv.set(name, new SimulatedXenHost(store, name));
  }
  const control = startControlWorker(rt, log);
  const { token } = options;
  const server = await startApi({
    rt,
    tokens: new TokenTable([{ token, role: 'admin', name: 'demo' }]),
    log,
    port: options.port,
  });
  const api = apiClient({ XSM_API: server.url, XSM_TOKEN: token });
  out(`API at ${server.url} (admin token ${token})`);
  out(`console: open ${server.url}/admin/login and paste the token; the job dashboard is ${server.url}/admin/queues`);
  const agents = DOM0S.map((name) =>
    startHostAgent({ rt, hv: hv.get(name)!, log: log.child({ host: name }), heartbeatMs: 500, peer: (h) => hv.get(h) }),
  );
  // The console's graphs: simulated Ganglia metrics every 5 s, stored as the poller stores them.
  const feed = simulatedMetricsFeed(hv, rt.metrics);
  feed.start(5000);
  try {
    await applyVersion(api, paper, 'the paper site (Figure 3)', hv);
    const changed = paper
      .replace(/(<VM name="vm1"[\s\S]*?<DOM0>)192\.168\.5\.101(<\/DOM0>)/, '$1192.168.5.102$2')
      .replace(/(<VM name="vm4"[\s\S]*?<VCPUS>)4(<\/VCPUS>)/, '$12$2');
    await applyVersion(api, changed, 'move vm1 next to vm2; give vm4 two vCPUs', hv);
    const hist = await rt.sites.history();
    out('\nsite history:');
    out(
      formatTable(
        ['VERSION', 'AUTHOR', 'REASON'],
        hist.map((h) => [String(h.version), h.author, h.reason]),
      ),
    );
    if (options.serve) {
      out(`\nserving until Ctrl-C or SIGTERM: try  XSM_API=${server.url} XSM_TOKEN=${token} npx xsm status`);
      await stopRequested;
    }
  } finally {
    await feed.stop();
    await server.close();
    await Promise.all(agents.map((a) => a.close()));
    await closeWhenReady(control);
    // After every worker closed: nothing records metrics once they have, and the wipe writes what is pending.
    await cleanup();
    await rt.close();
  }
}

// Ctrl-C and SIGTERM end the demo the same way: while serving they end the wait; during the applies the
// process still cleans up before it exits, so no demo keys stay in Redis either way.
let stop: (signal: NodeJS.Signals) => void = () => {};
const stopRequested = new Promise<NodeJS.Signals>((resolve) => (stop = resolve));
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => {
    stop(signal);
    if (options.serve || stopping) return;
    stopping = true;
    // Not serving: the applies are cut short; remove the keys and leave with the signal's conventional code.
    cleanup()
      .catch(() => undefined)
      .finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  });

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`xsm demo failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
