// The embedded default (`npm run demo`, `bash scripts/demo`): XSM's main job on a simulated site.
// Four simulated Xen hosts stand in for the paper's four Dom0s (192.168.5.101-104). XSM applies the
// paper's site file (Figure 3), then a changed version (vm1 migrates to .102, vm4 drops to 2 vCPUs live),
// through the same queues, workflows and host agents a real site uses, and prints where each VM runs.
// Uses the Redis at XSM_REDIS_URL under a fresh prefix and removes its keys on the way out.

import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { MemorySimStore, SimulatedXenHost, provisionSimHost } from '../drivers/hypervisor/simulated.ts';
import { XsmRuntime } from '../jobs/runtime.ts';
import { convergedVersion, storedPlan } from '../jobs/apply.ts';
import { startApi } from '../api/listen.ts';
import { TokenTable } from '../api/auth.ts';
import { apiClient, type ApiClient } from '../cli/api-client.ts';
import { closeWhenReady, redisConfigFromEnv } from '../lib/redis.ts';
import { createLogger } from '../lib/log.ts';
import { formatPlan, formatTable } from '../site/plan-format.ts';
import { startHostAgent } from '../../workers/host-agent-lib.ts';
import { startControlWorker } from '../../workers/control-lib.ts';

const out = (line = '') => process.stdout.write(line + '\n');
const log = createLogger({ component: 'demo' }, (process.env.XSM_LOG_LEVEL as 'info' | undefined) ?? 'warn');
const prefix = `xsm-demo-${randomBytes(3).toString('hex')}`;
const rt = new XsmRuntime({ ...redisConfigFromEnv(), prefix });
const DOM0S = ['192.168.5.101', '192.168.5.102', '192.168.5.103', '192.168.5.104'];

async function cleanup(): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await rt.redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await rt.redis.del(...keys);
  } while (cursor !== '0');
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
  await rt.redis.ping().catch((e: Error) => {
    throw new Error(`cannot reach Redis at ${rt.config.url}: ${e.message} (start one, or set XSM_REDIS_URL)`);
  });
  out("XSM demo: four simulated Xen hosts (2 GiB, 4 CPUs each) as the paper's Dom0s; Redis prefix " + prefix);
  const store = new MemorySimStore();
  const hv = new Map<string, SimulatedXenHost>();
  for (const name of DOM0S) {
    await provisionSimHost(store, { name, totalMemMiB: 2048, dom0MemMiB: 512, nrCpus: 4 });
    hv.set(name, new SimulatedXenHost(store, name));
  }
  const control = startControlWorker(rt, log);
  const token = randomBytes(18).toString('hex');
  const server = await startApi({
    rt,
    tokens: new TokenTable([{ token, role: 'admin', name: 'demo' }]),
    log,
    port: Number(process.env.XSM_API_PORT ?? 0),
  });
  const api = apiClient({ XSM_API: server.url, XSM_TOKEN: token });
  out(`API at ${server.url} (token ${token}); job dashboard at ${server.url}/admin/login`);
  const agents = DOM0S.map((name) =>
    startHostAgent({ rt, hv: hv.get(name)!, log: log.child({ host: name }), heartbeatMs: 500, peer: (h) => hv.get(h) }),
  );
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
    if (process.argv.includes('--serve')) {
      out(`\nserving until Ctrl-C: try  XSM_API=${server.url} XSM_TOKEN=${token} npx xsm status`);
      await new Promise((r) => process.once('SIGINT', r));
    }
  } finally {
    await server.close();
    await Promise.all(agents.map((a) => a.close()));
    await closeWhenReady(control);
    await cleanup();
    await rt.close();
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`xsm demo failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
