// Issue 20 goal 3: reads never slow applies. `GET /api/vms` at 10,000 VMs under 100 connections (goal: p99
// < 100 ms), full answers plain (no Accept-Encoding) and gzipped (`Accept-Encoding: gzip`, as the CLI's fetch
// and browsers ask), conditional ones (If-None-Match with the gzip ETag, how the CLI polls), and a
// 10,000-action apply with that read load beside the same apply without it (goal: <= 1.2x its time).
//
// As deployed: the API is its own process (`tsx workers/api.ts`, the control worker included, the default),
// the host agents run in two processes (bench/apply.ts --child: simulated Xen hosts with zero-delay timing),
// and the load is `wrk` (Debian's, C: the client's own cost stays out of the latencies), with a 30 s request
// timeout so a slow answer is counted, not dropped. Every run starts a fresh API and agents on a fresh key
// prefix of a private redis-server. Runs alternate which apply comes first, so drift hits both alike.
//
// Run: npx tsx bench/reads-under-apply.ts [--runs 5] [--hosts 1000] [--vms 10000] [--connections 100]
//        [--read-seconds 10] [--split [--nice N]] [--in-loop-baseline]
// --reads-only: no apply and no agents: the site is stored and its observed state written as converged (the
//   same 10,000-VM list), then only the steady reads are measured, the in-loop build beside the thread in each
//   run. For a machine too busy for the applies (they fail there when job locks lapse).
// --in-loop-baseline: each run also measures an API that builds the list on its event loop
// (XSM_VM_LIST_THREAD=0, as before the worker thread), loaded apply and steady reads alike, beside the default.
// --split: the API serves reads only (XSM_CONTROL=0), optionally under `nice -n N`, and the control worker
// runs in this process, as a site that keeps its API node apart from its control node would run them.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { benchOptions } from './options.ts';
import { median, spread, table } from './figures.ts';
import { privateRedis } from './private-redis.ts';
import { forkAgents, startApiProcess } from './site-processes.ts';
import { XsmRuntime } from '../src/runtime/runtime.ts';
import { submitSite } from '../src/services/site-service.ts';
import { awaitConverged } from './await-converged.ts';
import { closeWhenReady, deleteKeysByPrefix, redisConfigFromEnv } from '../src/lib/redis.ts';
import { silentLogger } from '../src/lib/log.ts';
import { startControlWorker } from '../workers/control-lib.ts';
import { serializeSite } from '../src/site/serialize.ts';
import { generateSite } from './generate.ts';

const USAGE = `usage: npx tsx bench/reads-under-apply.ts [--runs 5] [--hosts 1000] [--vms 10000] [--connections 100]
       [--read-seconds 10] [--split [--nice N]] [--in-loop-baseline] [--reads-only]`;
const { values, count } = benchOptions(
  {
    runs: { type: 'string', default: '5' },
    hosts: { type: 'string', default: '1000' },
    vms: { type: 'string', default: '10000' },
    connections: { type: 'string', default: '100' },
    'read-seconds': { type: 'string', default: '10' },
    split: { type: 'boolean', default: false },
    nice: { type: 'string', default: '0' },
    'in-loop-baseline': { type: 'boolean', default: false },
    'reads-only': { type: 'boolean', default: false },
  },
  USAGE,
);
const RUNS = count('runs');
const HOSTS = count('hosts');
const VMS = count('vms');
const CONNECTIONS = count('connections');
const READ_SECONDS = count('read-seconds');
const SPLIT = values.split;
const NICE = count('nice', 0);
const IN_LOOP_BASELINE = values['in-loop-baseline'];
const READS_ONLY = values['reads-only'];
const TOKEN = 'bench-reader-token-0000000001';
const AGENT_PROCS = 2;

/** What one `wrk` run printed: latencies in ms, throughput, and answers that were not 2xx/3xx or timed out. */
interface WrkResult {
  p50: number;
  p99: number;
  max: number;
  requests: number;
  perSec: number;
  bad: number;
}

function ms(value: string, unit: string): number {
  const n = Number(value);
  return unit === 'us' ? n / 1000 : unit === 'ms' ? n : unit === 's' ? n * 1000 : unit === 'm' ? n * 60_000 : NaN;
}

/** Parses `wrk --latency` output; throws, quoting it, when a figure is missing. */
function parseWrk(out: string): WrkResult {
  const pct = (p: string) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    if (!m) throw new Error(`wrk printed no ${p}% latency:\n${out}`);
    return ms(m[1]!, m[2]!);
  };
  const max = /^\s*Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)/m.exec(out);
  const reqs = /^\s*(\d+) requests in/m.exec(out);
  const perSec = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  if (!max || !reqs || !perSec) throw new Error(`wrk's output is not as expected:\n${out}`);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out);
  const timeouts = /Socket errors:.*timeout (\d+)/.exec(out);
  return {
    p50: pct('50'),
    p99: pct('99'),
    max: ms(max[1]!, max[2]!),
    requests: Number(reqs[1]),
    perSec: Number(perSec[1]),
    bad: Number(non2xx?.[1] ?? 0) + Number(timeouts?.[1] ?? 0),
  };
}

/** Starts wrk against `url`; `stop()` ends it early (SIGINT: wrk prints what it measured so far). */
function wrk(url: string, seconds: number, headers: string[]): { stop: () => void; result: Promise<WrkResult> } {
  const args = ['--latency', '-t', '2', '-c', String(CONNECTIONS), '-d', `${seconds}s`, '--timeout', '30s'];
  for (const h of headers) args.push('-H', h);
  const child = spawn('wrk', [...args, url], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const result = once(child, 'exit').then(([code]) => {
    if (code !== 0) throw new Error(`wrk exited with ${code}:\n${out}`);
    return parseWrk(out);
  });
  return { stop: () => child.kill('SIGINT'), result };
}

interface Site {
  url: string;
  rt: XsmRuntime;
  prefix: string;
  stop: () => Promise<void>;
}

/** A fresh API process (with its control worker) and agent processes for every host, on a new key prefix. */
async function startSite(hostNames: string[], inLoop = false, agentProcs = AGENT_PROCS): Promise<Site> {
  const prefix = `xsm-bench-reads-${randomBytes(3).toString('hex')}`;
  // XSM_BENCH_PROF=DIR: a CPU profile of the API process into DIR.
  const prof = process.env.XSM_BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.XSM_BENCH_PROF}`] : [];
  const { url, api } = await startApiProcess(
    {
      ...(SPLIT ? { XSM_CONTROL: '0' } : {}),
      XSM_VM_LIST_THREAD: inLoop ? '0' : '1',
      XSM_PREFIX: prefix,
      XSM_TOKENS: `${TOKEN}:viewer:reader`,
    },
    { nodeArgs: prof, nice: NICE },
  );
  const agents = agentProcs ? await forkAgents(prefix, hostNames, agentProcs) : [];
  const rt = new XsmRuntime({ ...redisConfigFromEnv(), prefix });
  const control = SPLIT ? startControlWorker(rt, silentLogger) : undefined;
  return {
    url,
    rt,
    prefix,
    stop: async () => {
      for (const c of agents) c.send({ stop: true });
      api.kill('SIGINT'); // SIGINT: the API shuts down cleanly (and writes its profile)
      await Promise.all([...agents, api].map((c) => (c.exitCode !== null ? null : once(c, 'exit'))));
      if (control) await closeWhenReady(control);
      await rt.close();
      await deleteKeysByPrefix(redisConfigFromEnv(), prefix);
    },
  };
}

/** Submits the site and waits for it to converge; seconds from the submit. Throws, naming them, when actions fail. */
async function applySite(rt: XsmRuntime, xml: string): Promise<number> {
  const t0 = Date.now();
  const { version } = await submitSite(rt, {
    xml,
    file: 'bench.xml',
    base: 0,
    author: 'bench',
    reason: 'reads-under-apply',
    consent: 'none',
    apply: true,
  });
  await awaitConverged(rt, version);
  return (Date.now() - t0) / 1000;
}

/** One API under the read load: its apply's time, and the reads during it and after it. */
interface Loaded {
  loadedApplyS: number;
  duringApply: WrkResult;
  full: WrkResult;
  fullGzip: WrkResult;
  conditional: WrkResult;
  bodyBytes: number;
  gzipBytes: number;
}

interface Run {
  quietApplyS: number;
  /** The API as configured by default: the list built in a worker thread. */
  thread: Loaded;
  /** With --in-loop-baseline: the list built on the API's event loop. */
  inLoop?: Loaded;
}

const GZIP = 'Accept-Encoding: gzip';

/** The gzipped answer as wrk will get it: its size on the wire and its ETag; throws unless it is gzip. */
function gzipAnswer(url: string, auth: string): Promise<{ bytes: number; etag: string }> {
  const [name, value] = auth.split(': ') as [string, string];
  return new Promise((resolve, reject) => {
    const req = request(`${url}/api/vms`, { headers: { [name]: value, 'accept-encoding': 'gzip' } }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => {
        const etag = res.headers.etag;
        if (res.statusCode !== 200 || res.headers['content-encoding'] !== 'gzip' || !etag)
          reject(
            new Error(`GET /api/vms with Accept-Encoding: gzip answered ${res.statusCode}, not gzip with an ETag`),
          );
        else resolve({ bytes, etag });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** The steady reads at the full size: every answer is the whole list, then only the ETag check. */
async function steadyReads(url: string): Promise<Omit<Loaded, 'loadedApplyS' | 'duringApply'>> {
  const auth = `Authorization: Bearer ${TOKEN}`;
  const first = await fetch(`${url}/api/vms`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const body = await first.text();
  const etag = first.headers.get('etag');
  if (!first.ok || !etag) throw new Error(`GET /api/vms answered ${first.status} without an ETag`);
  const listed = (JSON.parse(body) as { vms: unknown[] }).vms.length;
  if (listed !== VMS) throw new Error(`GET /api/vms listed ${listed} VMs, not ${VMS}`);
  const full = await wrk(`${url}/api/vms`, READ_SECONDS, [auth]).result;
  const gz = await gzipAnswer(url, auth);
  const fullGzip = await wrk(`${url}/api/vms`, READ_SECONDS, [auth, GZIP]).result;
  const conditional = await wrk(`${url}/api/vms`, READ_SECONDS, [auth, GZIP, `If-None-Match: ${gz.etag}`]).result;
  return { full, fullGzip, conditional, bodyBytes: Buffer.byteLength(body), gzipBytes: gz.bytes };
}

/** --reads-only: the site stored, not applied, and every VM written as observed where declared. */
async function convergedWithoutApply(
  hostNames: string[],
  site: ReturnType<typeof generateSite>,
  xml: string,
  inLoop: boolean,
): Promise<Loaded> {
  const s = await startSite(hostNames, inLoop, 0);
  try {
    const { version } = await submitSite(s.rt, {
      xml,
      file: 'bench.xml',
      base: 0,
      author: 'bench',
      reason: 'reads-under-apply --reads-only',
      consent: 'none',
      apply: false,
    });
    for (const h of site.hosts) {
      const vms = site.vms.filter((v) => v.host === h.name);
      await s.rt.observed.report({
        name: h.name,
        heartbeatAt: Date.now(),
        totalMemMiB: h.memoryMiB,
        freeMemMiB: h.memoryMiB - vms.reduce((sum, v) => sum + v.memMiB, 0),
        nrCpus: h.cpus,
        domains: vms.map((v, i) => ({
          name: v.name,
          domid: i + 1,
          state: 'running',
          memMiB: v.memMiB,
          maxMemMiB: v.memMiB,
          vcpus: v.vcpus,
          maxVcpus: v.vcpus,
          cpuTimeSec: 0,
        })),
      });
    }
    await s.rt.applies.markConverged(version);
    const zero = { p50: 0, p99: 0, max: 0, requests: 0, perSec: 0, bad: 0 };
    return { loadedApplyS: 0, duringApply: zero, ...(await steadyReads(s.url)) };
  } finally {
    await s.stop();
  }
}

/** A fresh site under the read load: the apply, then the steady reads at the full size. */
async function loadedSite(hostNames: string[], xml: string, inLoop: boolean): Promise<Loaded> {
  const auth = `Authorization: Bearer ${TOKEN}`;
  const site = await startSite(hostNames, inLoop);
  try {
    const load = wrk(`${site.url}/api/vms`, 3600, [auth]);
    let loadedApplyS: number;
    try {
      loadedApplyS = await applySite(site.rt, xml);
    } finally {
      load.stop(); // a failed apply must not leave wrk loading the API for an hour
    }
    const duringApply = await load.result;
    return { loadedApplyS, duringApply, ...(await steadyReads(site.url)) };
  } finally {
    await site.stop();
  }
}

/** Alternates the order of the quiet apply and the loaded ones from run to run, so drift hits all alike. */
async function oneRun(
  i: number,
  hostNames: string[],
  xml: string,
  site: ReturnType<typeof generateSite>,
): Promise<Run> {
  if (READS_ONLY) {
    const order = i % 2 === 1 ? [true, false] : [false, true];
    const r: Partial<Run> = { quietApplyS: 0 };
    for (const inLoop of order)
      r[inLoop ? 'inLoop' : 'thread'] = await convergedWithoutApply(hostNames, site, xml, inLoop);
    return r as Run;
  }
  const phases: ('quiet' | 'thread' | 'inLoop')[] = IN_LOOP_BASELINE
    ? ['quiet', 'thread', 'inLoop']
    : ['quiet', 'thread'];
  if (i % 2 === 1) phases.reverse();
  const r: Partial<Run> = {};
  for (const phase of phases) {
    if (phase === 'quiet') {
      const site = await startSite(hostNames);
      try {
        r.quietApplyS = await applySite(site.rt, xml);
      } finally {
        await site.stop();
      }
    } else r[phase] = await loadedSite(hostNames, xml, phase === 'inLoop');
  }
  return r as Run;
}

const MODES: { key: 'thread' | 'inLoop'; label: string }[] = [
  { key: 'thread', label: 'list built in a worker thread' },
  { key: 'inLoop', label: 'list built on the event loop' },
];

async function main(): Promise<void> {
  const site = generateSite(HOSTS, VMS, 7);
  const xml = serializeSite(site);
  const hostNames = site.hosts.map((h) => h.name);
  const runs: Run[] = [];
  const load0 = loadavg()[0]!;
  for (let i = 0; i < RUNS; i++) {
    const r = await oneRun(i, hostNames, xml, site);
    runs.push(r);
    const said = (l: Loaded) =>
      `${l.loadedApplyS.toFixed(1)} s under reads; p99 ${l.full.p99.toFixed(1)} ms full, ` +
      `${l.fullGzip.p99.toFixed(1)} ms full gzip, ${l.conditional.p99.toFixed(1)} ms conditional`;
    process.stderr.write(
      `run ${i + 1} (load ${loadavg()[0]!.toFixed(1)}): apply ${r.quietApplyS.toFixed(1)} s quiet; ` +
        `thread: ${said(r.thread)}${r.inLoop ? `; in loop: ${said(r.inLoop)}` : ''}\n`,
    );
  }
  const modes = MODES.filter((m) => runs[0]![m.key]);
  const all = (m: (typeof MODES)[number]) => runs.map((r) => r[m.key]!);
  console.log(
    `\n${HOSTS} hosts / ${VMS} VMs, ${CONNECTIONS} connections (wrk, 2 threads), ${RUNS} runs, medians (min–max); ` +
      (READS_ONLY ? 'reads only (no apply; observed state written as converged); ' : '') +
      (SPLIT
        ? `API reads only${NICE ? ` under nice -n ${NICE}` : ''}, control worker in its own process; `
        : 'API with its control worker (the default); ') +
      `load average ${load0.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end; ` +
      `GET /api/vms body ${(median(runs.map((r) => r.thread.bodyBytes)) / 1e6).toFixed(2)} MB, ` +
      `${(median(runs.map((r) => r.thread.gzipBytes)) / 1e3).toFixed(0)} kB gzipped\n`,
  );
  const rows: string[][] = [];
  for (const m of modes) {
    const prefix = modes.length > 1 ? `${m.label}: ` : '';
    rows.push(
      readRow(all(m), `${prefix}full list plain, steady`, 'full', true),
      readRow(all(m), `${prefix}full list gzip, steady`, 'fullGzip', true),
      readRow(all(m), `${prefix}If-None-Match (gzip), steady`, 'conditional', false),
    );
    if (!READS_ONLY) rows.push(readRow(all(m), `${prefix}full list plain, during the apply`, 'duringApply', false));
  }
  console.log(table(['reads', 'p50 ms', 'p99 ms', 'max ms', 'req/s', 'bad answers', 'goal'], rows));
  if (READS_ONLY) return; // no apply was run
  const applyRows: string[][] = [
    [
      'no reads (baseline)',
      spread(
        runs.map((r) => r.quietApplyS),
        1,
      ),
      spread(
        runs.map((r) => VMS / r.quietApplyS),
        0,
      ),
      '1.00',
      '',
    ],
  ];
  for (const m of modes) {
    const ratios = runs.map((r) => r[m.key]!.loadedApplyS / r.quietApplyS);
    applyRows.push([
      `under the read load${modes.length > 1 ? `, ${m.label}` : ''}`,
      spread(
        all(m).map((l) => l.loadedApplyS),
        1,
      ),
      spread(
        all(m).map((l) => VMS / l.loadedApplyS),
        0,
      ),
      spread(ratios, 2),
      median(ratios) <= 1.2 ? '<= 1.2x: met' : '<= 1.2x: NOT met',
    ]);
  }
  console.log('');
  console.log(table(['apply of ' + VMS + ' creates', 'seconds', 'actions/s', 'ratio to quiet', 'goal'], applyRows));
}

type Reads = 'full' | 'fullGzip' | 'conditional' | 'duringApply';

/** One line of the reads table; `goal`: judge its median p99 against the goal's 100 ms. */
function readRow(loaded: Loaded[], label: string, which: Reads, goal: boolean): string[] {
  const p99 = median(loaded.map((l) => l[which].p99));
  const col = (key: keyof WrkResult, digits = 1) =>
    spread(
      loaded.map((l) => l[which][key]),
      digits,
    );
  return [
    label,
    col('p50'),
    col('p99'),
    col('max'),
    col('perSec', 0),
    String(Math.max(...loaded.map((l) => l[which].bad))),
    goal ? (p99 < 100 ? 'p99 < 100 ms: met' : 'p99 < 100 ms: NOT met') : '',
  ];
}

const stopRedis = await privateRedis();
try {
  await main();
} finally {
  stopRedis();
}
