// /api/health latency while three clients upload ~30 MB site files at once (POST /api/site/validate), with
// site files parsed in worker threads (XSM_SITE_PARSE_THREADS=2, the default) and, as the baseline in the
// same run, on the event loop (XSM_SITE_PARSE_THREADS=0, how the API parsed before). The API runs as its own
// process (`tsx workers/api.ts`, control worker included, as deployed); the uploads are three curl
// processes, so this process's own event loop only sends the health probes it times.
// Goal: p99 < 100 ms during the uploads.
// Run: npx tsx bench/api-health-under-upload.ts [--rounds 3] [--mb 30]

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { freePort } from './private-redis.ts';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serializeSite } from '../src/site/serialize.ts';
import { formatTable } from '../src/site/plan-format.ts';
import { deleteKeysByPrefix, redisConfigFromEnv } from '../src/lib/redis.ts';
import { generateSite } from './generate.ts';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, mb: { type: 'string', default: '30' } },
  strict: true,
});
const rounds = Number(values.rounds);
const targetMb = Number(values.mb);
const TOKENS = ['bench-uploader-1-token-000001', 'bench-uploader-2-token-000002', 'bench-uploader-3-token-000003'];

async function startApi(threads: number): Promise<{ url: string; child: ChildProcess; prefix: string }> {
  const port = await freePort();
  const prefix = `xsm-bench-health-${randomBytes(3).toString('hex')}`;
  const child = spawn(process.execPath, ['--import', 'tsx', 'workers/api.ts'], {
    env: {
      ...process.env,
      XSM_API_PORT: String(port),
      XSM_PREFIX: prefix,
      XSM_TOKENS: TOKENS.map((t, i) => `${t}:viewer:uploader${i + 1}`).join(','),
      XSM_SITE_PARSE_THREADS: String(threads),
      XSM_FAILOVER_CHECK_S: '0',
      XSM_LOG_LEVEL: 'error',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  child.on('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM')
      process.stderr.write(`API (threads ${threads}) exited: ${code ?? signal}\n`);
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    if (
      await fetch(`${url}/api/health`)
        .then((r) => r.ok)
        .catch(() => false)
    )
      return { url, child, prefix };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the API did not start');
}

/** Probes /api/health every 20 ms until `done` settles; returns each probe's latency in ms. */
async function probe(url: string, done: Promise<unknown>): Promise<number[]> {
  const latencies: number[] = [];
  let finished = false;
  void done.finally(() => (finished = true));
  while (!finished) {
    const t = performance.now();
    // A kept-alive connection the server closed while its loop was blocked is reset: the probe is sent
    // again and its latency counts from the first try, as a client would see it.
    for (let attempt = 0; ; attempt++) {
      try {
        await fetch(`${url}/api/health`).then((r) => r.arrayBuffer());
        break;
      } catch (e) {
        if (attempt >= 3) throw e;
      }
    }
    latencies.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 20));
  }
  return latencies;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const median = (xs: number[]) => pct(xs, 50);
const spread = (xs: number[]) =>
  `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)})`;

// About 180 bytes a VM; ten VMs a host keeps every host within capacity, so the file is valid.
const vms = Math.round((targetMb * 2 ** 20) / 180);
const xml = serializeSite(generateSite(Math.ceil(vms / 10), vms));
process.stdout.write(`site file: ${(xml.length / 2 ** 20).toFixed(1)} MiB, ${vms} VMs; ${rounds} rounds per mode\n`);

const dir = await mkdtemp(join(tmpdir(), 'xsm-bench-upload-'));
const siteFile = join(dir, 'site.xml');
await writeFile(siteFile, xml);

/** One upload by curl, a process of its own, as a real client. */
async function upload(url: string, token: string): Promise<void> {
  const curl = spawn('curl', [
    '-s',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}',
    '-H',
    `authorization: Bearer ${token}`,
    '-H',
    'content-type: application/xml',
    '--data-binary',
    `@${siteFile}`,
    `${url}/api/site/validate`,
  ]);
  let code = '';
  curl.stdout.on('data', (d: Buffer) => (code += d.toString()));
  await once(curl, 'exit');
  if (code !== '200') throw new Error(`upload answered ${code}`);
}

const rows: string[][] = [];
const threadedP99: number[] = [];
for (const [label, threads] of [
  ['worker threads (2)', 2],
  ['event loop (baseline)', 0],
] as const) {
  const api = await startApi(threads);
  const idleP50: number[] = [];
  const busyP50: number[] = [];
  const busyP99: number[] = [];
  const busyMax: number[] = [];
  let probes = 0;
  try {
    for (let r = 0; r < rounds; r++) {
      const idle = await probe(api.url, new Promise((res) => setTimeout(res, 1000)));
      const uploads = Promise.all(TOKENS.map((token) => upload(api.url, token)));
      const busy = await probe(api.url, uploads);
      await uploads;
      process.stdout.write(
        `${label} round ${r + 1}: ${busy.length} probes during uploads, p99 ${pct(busy, 99).toFixed(1)} ms, max ${Math.max(...busy).toFixed(1)} ms\n`,
      );
      idleP50.push(median(idle));
      busyP50.push(median(busy));
      busyP99.push(pct(busy, 99));
      if (threads > 0) threadedP99.push(pct(busy, 99));
      busyMax.push(Math.max(...busy));
      probes += busy.length;
    }
  } finally {
    api.child.kill('SIGTERM');
    await once(api.child, 'exit');
    await deleteKeysByPrefix(redisConfigFromEnv(), api.prefix);
  }
  rows.push([label, spread(idleP50), spread(busyP50), spread(busyP99), spread(busyMax), String(probes)]);
}
process.stdout.write(
  formatTable(
    ['site files parsed on', 'idle p50 ms', 'during uploads p50 ms', 'p99 ms', 'max ms', 'probes during uploads'],
    rows,
  ) + '\n',
);
process.stdout.write('each cell: median across rounds (min–max)\n');
const p99 = median(threadedP99);
process.stdout.write(
  `goal: p99 < 100 ms during three concurrent uploads: ${p99 < 100 ? 'MET' : 'NOT MET'} (median p99 ${p99.toFixed(1)} ms)\n`,
);
await rm(dir, { recursive: true, force: true });
