// One trace follows a live migration from the HTTP request through the apply job, the host's migrate job and
// its steps, down to the `xl migrate` call, exported over OTLP/HTTP to a receiver in this process.
import test from 'ava';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { startTestSite } from '../integration/harness.ts';
import { siteXml } from '../integration/fixtures.ts';
import { startApi } from '../../src/api/listen.ts';
import { TokenTable } from '../../src/api/auth.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { bullmqTelemetry, flushTracing, startTracing, stopTracing, tracedDriver } from '../../src/lib/tracing.ts';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  attributes: { key: string; value: { stringValue?: string; intValue?: string | number } }[];
}

const HOSTS = [
  { name: 'h1', memMiB: 2048 },
  { name: 'h2', memMiB: 2048 },
];
const TOKEN = 'tracing-test-admin-token-0001';

test('a migration is one trace: HTTP request > apply > migrate job > steps > xl.migrate, with attributes', async (t) => {
  // Off until started: no telemetry for BullMQ, drivers untouched.
  const driver = { ping: async () => 1 };
  t.deepEqual(bullmqTelemetry(), {});
  t.is(tracedDriver(driver, 'x', {}), driver);

  const spans: OtlpSpan[] = [];
  const receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      const doc = JSON.parse(body.toString()) as {
        resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[];
      };
      for (const rs of doc.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  receiver.listen(0, '127.0.0.1');
  await once(receiver, 'listening');
  t.teardown(() => receiver.close());
  const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  t.true(await startTracing('xsm-test', { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint }));
  t.teardown(() => stopTracing());

  const s = await startTestSite(HOSTS);
  const api = await startApi({
    rt: s.rt,
    tokens: new TokenTable([{ token: TOKEN, role: 'admin', name: 'ada' }]),
    log: silentLogger,
  });
  t.teardown(async () => {
    await api.close();
    await s.close();
  });
  const post = async (path: string, body: string, type: string) => {
    const r = await fetch(api.url + path, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': type },
      body,
    });
    return (await r.json()) as { version: number };
  };
  const v1 = await post('/api/site?base=0', siteXml(HOSTS, [{ name: 'a', host: 'h1', mem: 256 }]), 'application/xml');
  await s.waitConverged(v1.version);
  const v2 = await post('/api/vms/a/migrate', JSON.stringify({ to: 'h2' }), 'application/json');
  await s.waitConverged(v2.version);
  t.deepEqual(await s.where(), { a: 'h2' });

  const attr = (span: OtlpSpan, key: string) => {
    const v = span.attributes.find((a) => a.key === key)?.value;
    return v?.stringValue ?? (v?.intValue !== undefined ? Number(v.intValue) : undefined);
  };
  let xlMigrate: OtlpSpan | undefined;
  for (let i = 0; i < 50 && !xlMigrate; i++) {
    await flushTracing();
    xlMigrate = spans.find((sp) => sp.name === 'xl.migrate');
    if (!xlMigrate) await new Promise((r) => setTimeout(r, 100));
  }
  if (!xlMigrate) return t.fail(`no xl.migrate span among ${spans.map((sp) => sp.name).join(', ')}`);
  t.is(attr(xlMigrate, 'xsm.host'), 'h1');
  t.is(attr(xlMigrate, 'xsm.vm'), 'a');

  // Walk up from the xl call to the root of its trace.
  const byId = new Map(spans.filter((sp) => sp.traceId === xlMigrate!.traceId).map((sp) => [sp.spanId, sp]));
  const chain: OtlpSpan[] = [];
  for (let sp: OtlpSpan | undefined = xlMigrate; sp; sp = sp.parentSpanId ? byId.get(sp.parentSpanId) : undefined)
    chain.push(sp);
  const names = chain.map((sp) => sp.name).reverse();
  t.log(names.join(' > '));
  t.is(names[0], 'POST /api/vms/:name/migrate', 'the root is the HTTP request');
  const apply = chain.find((sp) => sp.name === 'apply');
  t.truthy(apply, `an apply span on the way: ${names.join(' > ')}`);
  t.is(attr(apply!, 'xsm.version'), v2.version);
  const job = chain.find((sp) => sp.name === 'migrate a');
  t.truthy(job, `the host's migrate job on the way: ${names.join(' > ')}`);
  t.like(
    { host: attr(job!, 'xsm.host'), vm: attr(job!, 'xsm.vm'), version: attr(job!, 'xsm.version') },
    { host: 'h1', vm: 'a', version: v2.version },
  );
  const step = chain.find((sp) => sp.name.startsWith('step '));
  t.truthy(step, `a step on the way: ${names.join(' > ')}`);
  t.is(attr(step!, 'xsm.step'), step!.name.slice('step '.length));
  t.true(names.indexOf('apply') < names.indexOf('migrate a'));
  t.true(names.indexOf('migrate a') < names.indexOf(step!.name));
});
