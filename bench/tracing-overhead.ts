// What tracing costs: XSM's apply (bench/apply.ts, one run = a fresh control process and its agent processes)
// with tracing off (no OTEL_EXPORTER_OTLP_ENDPOINT: no SDK, no-op spans) and on (every span exported over
// OTLP/HTTP to a receiver in this process), alternating off/on so machine drift hits both. Prints actions/s,
// job latency and CPU per action as median (min–max), the on/off ratios, and how many spans were received.
// Run: npx tsx bench/tracing-overhead.ts [hosts vms]   (default 100 1000; XSM_BENCH_RUNS, default 3)

import { fork } from 'node:child_process';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { median, ratio, spread, table } from './figures.ts';

interface Result {
  actionsPerSec: number;
  p50: number;
  p99: number;
  cpuMsPerAction: number;
}

const [hosts = '100', vms = '1000'] = process.argv.slice(2);
const runs = Number(process.env.XSM_BENCH_RUNS ?? 3);

let spans = 0;
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let body = Buffer.concat(chunks);
    if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
    const doc = JSON.parse(body.toString()) as { resourceSpans: { scopeSpans: { spans: unknown[] }[] }[] };
    for (const rs of doc.resourceSpans) for (const ss of rs.scopeSpans) spans += ss.spans.length;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
receiver.listen(0, '127.0.0.1');
await once(receiver, 'listening');
const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

function applyRun(traced: boolean): Promise<Result> {
  const env = { ...process.env };
  delete env.OTEL_EXPORTER_OTLP_ENDPOINT;
  delete env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  if (traced) env.OTEL_EXPORTER_OTLP_ENDPOINT = endpoint;
  const c = fork(
    new URL('./apply.ts', import.meta.url).pathname,
    ['--apply-run', traced ? 'on' : 'off', hosts, vms, '2'],
    {
      execArgv: process.execArgv,
      env,
      stdio: 'inherit',
    },
  );
  return new Promise((resolve, reject) => {
    c.once('message', (r: Result) => resolve(r));
    c.once('exit', (code) => reject(new Error(`apply run exited with ${code}`)));
  });
}

console.log(`tracing overhead: apply ${hosts} hosts / ${vms} VMs, ${runs} runs each, off and on alternating`);
const off: Result[] = [];
const on: Result[] = [];
await applyRun(false); // warm-up: compile caches, Redis
for (let i = 0; i < runs; i++) {
  off.push(await applyRun(false));
  const before = spans;
  on.push(await applyRun(true));
  console.log(
    `run ${i + 1}: off ${off[i]!.actionsPerSec.toFixed(0)} actions/s, on ${on[i]!.actionsPerSec.toFixed(0)} actions/s, ${spans - before} spans received`,
  );
}
receiver.close();
const row = (label: string, rs: Result[]) => [
  label,
  spread(rs.map((r) => r.actionsPerSec)),
  spread(rs.map((r) => r.p50)),
  spread(rs.map((r) => r.p99)),
  spread(
    rs.map((r) => r.cpuMsPerAction),
    2,
  ),
];
console.log(
  '\n' +
    table(
      ['tracing', 'actions/s', 'p50 ms', 'p99 ms', 'CPU ms per action'],
      [row('off (no endpoint)', off), row('on (OTLP to a local receiver)', on)],
    ),
);
console.log(
  `\non/off: actions/s ${ratio((r: Result) => r.actionsPerSec, on, off)}, CPU per action ${ratio((r: Result) => r.cpuMsPerAction, on, off)}; spans received per traced run: ${Math.round(spans / runs)}`,
);

// The cost of the instrumentation itself with tracing off, against calling the same work bare, in this
// process (tracing is never started here): what every action pays for the ~12 spans it would have.
const { inSpan, tracedDriver } = await import('../src/lib/tracing.ts');
const driver = {
  async list() {
    return 1;
  },
};
const wrapped = tracedDriver(driver, 'xl', {});
const N = 200_000;
const time = async (fn: () => Promise<unknown>) => {
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await fn();
  return ((performance.now() - t0) * 1e6) / N; // ns per call
};
const bare: number[] = [];
const instrumented: number[] = [];
for (let r = 0; r < 5; r++) {
  bare.push(await time(() => driver.list()));
  instrumented.push(await time(() => inSpan('step x', { 'xsm.step': 'x' }, () => wrapped.list())));
}
const extraNs = median(instrumented) - median(bare);
const perAction = (extraNs * (spans / runs / Number(vms))) / 1e6; // ms
console.log(
  `\ntracing off, in-process: a bare async call ${spread(bare, 0)} ns, the same inside inSpan + tracedDriver ${spread(instrumented, 0)} ns;` +
    ` at ${(spans / runs / Number(vms)).toFixed(1)} spans per action that is ${(perAction * 1000).toFixed(2)} µs per action,` +
    ` ${((perAction / median(off.map((r) => r.cpuMsPerAction))) * 100).toFixed(3)}% of its ${median(off.map((r) => r.cpuMsPerAction)).toFixed(2)} CPU ms`,
);
