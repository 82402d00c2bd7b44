import test from 'ava';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { parseGangliaXml } from '../../src/ganglia/xml.ts';
import { encodeMetric, gmetricSender } from '../../src/ganglia/gmetric.ts';
import { fetchGangliaXml } from '../../src/ganglia/client.ts';
import { vmMetricsPublisher } from '../../src/ganglia/vm-metrics.ts';
import { MetricsStore } from '../../src/state/metrics-store.ts';
import { MemorySimStore, SimulatedXenHost, provisionSimHost } from '../../src/drivers/hypervisor/simulated.ts';
import { redisConfigFromEnv } from '../../src/lib/redis.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { pollOnce } from '../../workers/ganglia-poller-lib.ts';
import { deleteKeys, freshPrefix } from '../integration/harness.ts';
import { gangliaXml } from '../../bench/ganglia-xml.ts';
import { haveGmond, startGmond } from './gmond.ts';

const SAMPLE = `<?xml version="1.0" encoding="ISO-8859-1" standalone="yes"?>
<!DOCTYPE GANGLIA_XML [
   <!ELEMENT GANGLIA_XML (GRID|CLUSTER|HOST)*>
      <!ATTLIST GANGLIA_XML VERSION CDATA #REQUIRED>
]>
<GANGLIA_XML VERSION="3.7.2" SOURCE="gmond">
<CLUSTER NAME="lab" LOCALTIME="1795562973" OWNER="unspecified" LATLONG="unspecified" URL="unspecified">
<HOST NAME="node21" IP="10.0.0.21" TAGS="" REPORTED="1795562948" TN="25" TMAX="20" DMAX="0" LOCATION="unspecified" GMOND_STARTED="-582860848">
<METRIC NAME="dom_cpu" VAL="12.5" TYPE="float" UNITS="%" TN="25" TMAX="60" DMAX="0" SLOPE="both">
<EXTRA_DATA>
<EXTRA_ELEMENT NAME="GROUP" VAL="xen"/>
<EXTRA_ELEMENT NAME="SPOOF_HOST" VAL="10.0.0.21:node21"/>
</EXTRA_DATA>
</METRIC>
</HOST>
<HOST NAME="localhost" IP="127.0.0.1" TAGS="" REPORTED="1795562966" TN="6" TMAX="20" DMAX="0" LOCATION="unspecified" GMOND_STARTED="1795562926">
<METRIC NAME="load_one" VAL="0.23" TYPE="float" UNITS=" " TN="46" TMAX="70" DMAX="0" SLOPE="both">
<EXTRA_DATA>
<EXTRA_ELEMENT NAME="GROUP" VAL="load"/>
<EXTRA_ELEMENT NAME="DESC" VAL="One minute load average"/>
</EXTRA_DATA>
</METRIC>
<METRIC NAME="cpu_num" VAL="2" TYPE="uint16" UNITS="CPUs" TN="46" TMAX="1200" DMAX="0" SLOPE="zero"></METRIC>
<METRIC NAME="xen_version" VAL="4.17 &lt;debian&gt;" TYPE="string" UNITS="" TN="25" TMAX="300" DMAX="600" SLOPE="both">
<EXTRA_DATA>
</EXTRA_DATA>
</METRIC>
</HOST>
</CLUSTER>
</GANGLIA_XML>
`;

test('parses gmond XML as captured: clusters, hosts, typed values, groups, spoofing, down hosts', (t) => {
  const d = parseGangliaXml(SAMPLE);
  t.is(d.source, 'gmond');
  t.is(d.clusters[0]!.name, 'lab');
  const [node, local] = d.clusters[0]!.hosts;
  t.like(node, { name: 'node21', ip: '10.0.0.21', reported: 1795562948, up: true });
  t.like(node!.metrics.dom_cpu, { value: 12.5, units: '%', group: 'xen', spoofHost: '10.0.0.21:node21', tn: 25 });
  t.like(local!.metrics.load_one, { value: 0.23, units: '', group: 'load' });
  t.is(local!.metrics.cpu_num!.value, 2);
  t.is(local!.metrics.xen_version!.value, '4.17 <debian>');
  // A host silent for more than 4 x TMAX is down, as the Ganglia web frontend decides.
  const stale = parseGangliaXml(SAMPLE.replace('TN="25" TMAX="20"', 'TN="81" TMAX="20"'));
  t.false(stale.clusters[0]!.hosts[0]!.up);
});

test('parses gmetad XML (GRID around clusters) as the benchmark generates it', (t) => {
  const d = parseGangliaXml(gangliaXml(3, 40, 'gmetad'));
  t.is(d.source, 'gmetad');
  t.is(d.clusters[0]!.hosts.length, 3);
  t.is(Object.keys(d.clusters[0]!.hosts[2]!.metrics).length, 40);
  t.is(d.clusters[0]!.hosts[2]!.metrics.os_name!.value, 'Linux');
});

test('refuses entity declarations, external DTDs and malformed XML, naming the source', (t) => {
  const laughs = `<?xml version="1.0"?><!DOCTYPE GANGLIA_XML [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><GANGLIA_XML VERSION="1" SOURCE="gmond"><HOST NAME="&b;" IP="1"/></GANGLIA_XML>`;
  t.throws(() => parseGangliaXml(laughs, 'gmond 10.0.0.1:8649'), {
    message: /^gmond 10\.0\.0\.1:8649: refusing a DOCTYPE with entity declarations/,
  });
  const ext = `<?xml version="1.0"?><!DOCTYPE GANGLIA_XML SYSTEM "file:///etc/passwd"><GANGLIA_XML/>`;
  t.throws(() => parseGangliaXml(ext), { message: /external DTD/ });
  t.throws(() => parseGangliaXml('<GANGLIA_XML VERSION="3"><CLUSTER NAME="x">'), { message: /not well-formed/ });
  t.throws(() => parseGangliaXml('<html><body>nope</body></html>', 'gmond h:80'), { message: /no <GANGLIA_XML> root/ });
  t.throws(
    () =>
      parseGangliaXml(
        '<GANGLIA_XML><HOST NAME="h" IP="1"><METRIC NAME="m" VAL="1" TYPE="float"><EXTRA_DATA></EXTRA_DATA></HOST></GANGLIA_XML>',
      ),
    { message: /HOST h: METRIC m is not closed/ },
  );
});

test('gmetric refuses what the gmetric command refuses', (t) => {
  t.throws(() => encodeMetric({ name: 'x', value: 'a"b', type: 'string' }, 'h'), { message: /invalid character/ });
  t.throws(() => encodeMetric({ name: 'x', value: Number.NaN, type: 'float' }, 'h'), {
    message: /does not represent a number/,
  });
  t.throws(() => encodeMetric({ name: 'x', value: 1, type: 'float', spoof: 'nocolon' }, 'h'), {
    message: /must be "ip:hostname"/,
  });
});

const withGmetric = existsSync('/usr/bin/gmetric') ? test : test.skip;

withGmetric('the metadata packet is byte for byte what the real gmetric command sends', async (t) => {
  // Capture the real command's packets on a UDP socket of ours.
  const sock = createSocket('udp4');
  sock.bind(0, '127.0.0.1');
  await once(sock, 'listening');
  const packets: Buffer[] = [];
  sock.on('message', (b) => packets.push(b));
  t.teardown(() => sock.close());
  const dir = await mkdtemp(join(tmpdir(), 'xsm-gmetric-'));
  await writeFile(
    join(dir, 'gmond.conf'),
    `globals { override_hostname = "vm" }\nudp_send_channel { host = 127.0.0.1  port = ${sock.address().port} }\n`,
  );
  execFileSync('gmetric', [
    '-c',
    join(dir, 'gmond.conf'),
    '-n',
    'vm_count',
    '-v',
    '3',
    '-t',
    'uint32',
    '-u',
    'VMs',
    '-s',
    'both',
    '-x',
    '60',
    '-d',
    '0',
    '-g',
    'xen',
    '-D',
    'Running domUs',
    '-T',
    'VM count',
    '-S',
    '10.0.0.5:vm',
  ]);
  const until = Date.now() + 3000;
  while (packets.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  const ours = encodeMetric(
    {
      name: 'vm_count',
      value: 3,
      type: 'uint32',
      units: 'VMs',
      slope: 'both',
      tmax: 60,
      dmax: 0,
      group: 'xen',
      desc: 'Running domUs',
      title: 'VM count',
      spoof: '10.0.0.5:vm',
    },
    'ignored',
  );
  t.is(ours.meta.toString('hex'), packets[0]!.toString('hex'));
  // gmetric sends every value as a string (id 133); ours is typed, with the same id prefix.
  const theirs = packets[1]!;
  t.is(theirs.readUInt32BE(0), 133);
  t.deepEqual(ours.value.subarray(4, 4 + 4 + 12 + 4 + 12 + 4), theirs.subarray(4, 4 + 4 + 12 + 4 + 12 + 4));
});

const withGmond = haveGmond ? test : test.skip;

withGmond(
  "per-VM metrics sent with XSM's gmetric reach a real gmond and come back through the poller into Redis",
  async (t) => {
    const gmond = await startGmond();
    const prefix = freshPrefix();
    const redis = new Redis(redisConfigFromEnv().url);
    t.teardown(async () => {
      await gmond.stop();
      await redis.quit();
      await deleteKeys(prefix);
    });
    const store = new MemorySimStore();
    await provisionSimHost(store, { name: 'xen01', totalMemMiB: 4096, dom0MemMiB: 512, nrCpus: 4 });
    const hv = new SimulatedXenHost(store, 'xen01', { createMs: 0 });
    await hv.create({ name: 'web1', text: 'name = "web1"\nmemory = 256\nmaxmem = 512\nvcpus = 2\n' });
    await hv.create({ name: 'db1', text: 'name = "db1"\nmemory = 1024\nvcpus = 1\n' });
    await hv.setUtilisation('web1', 0.75); // of each of its 2 vCPUs
    const sender = gmetricSender({ host: '127.0.0.1', port: gmond.udpPort }, 'xen01');
    t.teardown(() => sender.close());
    const publish = vmMetricsPublisher(hv, sender, '10.0.0.1', (vm) => (vm === 'web1' ? '10.0.1.5' : undefined));
    await publish();
    await new Promise((r) => setTimeout(r, 1000));
    await publish();
    const metrics = new MetricsStore(redis, prefix);
    const ep = { host: '127.0.0.1', port: gmond.tcpPort };
    // gmond folds in UDP packets asynchronously: poll until the VMs show up.
    const until = Date.now() + 10000;
    let web: Awaited<ReturnType<MetricsStore['latest']>>;
    while (Date.now() < until) {
      const [r] = await pollOnce([ep], metrics, silentLogger);
      t.falsy(r!.error);
      web = await metrics.latest('web1');
      if (web?.metrics.vm_cpu_pct && (await metrics.latest('xen01'))?.metrics.vm_count) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    t.like(web!, { host: 'web1', ip: '10.0.1.5' });
    t.like(await metrics.latest('db1'), { host: 'db1', ip: 'db1' });
    t.like(await metrics.latest('xen01'), { host: 'xen01', ip: '10.0.0.1' });
    t.like(web!.metrics.vm_mem_used, { v: 256, units: 'MiB' });
    t.is(web!.metrics.vm_mem_max!.v, 512);
    t.is(web!.metrics.vm_vcpus_online!.v, 2);
    t.is(web!.metrics.vm_state!.v, 'running');
    t.is(web!.metrics.vm_dom0!.v, 'xen01');
    // 2 vCPUs 75% busy is 150%.
    t.true(Math.abs((web!.metrics.vm_cpu_pct!.v as number) - 150) < 30, String(web!.metrics.vm_cpu_pct!.v));
    t.is((await metrics.latest('db1'))!.metrics.vm_mem_used!.v, 1024);
    t.is((await metrics.latest('xen01'))!.metrics.vm_count!.v, 2);
    // Domain-0 itself, on its own Ganglia host: its memory and vCPUs as Xen reports them.
    const dom0 = (await metrics.latest('xen01'))!.metrics;
    t.like(dom0.dom0_mem_used, { v: 512, units: 'MiB' });
    t.is(dom0.dom0_vcpus_online!.v, 4);
    t.is(dom0.dom0_state!.v, 'running');
    const hist = await metrics.history('web1', 'vm_mem_used');
    t.true(hist.length >= 1);
    t.is(hist[0]![1], 256);
    // The raw dump really is gmond's: its DTD, its attribute set.
    const raw = await fetchGangliaXml(ep);
    t.regex(raw, /<!DOCTYPE GANGLIA_XML \[/);
    t.regex(raw, /<HOST NAME="web1" IP="10\.0\.1\.5"/);
  },
);

withGmond('an endpoint that does not answer is reported and the others are still stored', async (t) => {
  const gmond = await startGmond();
  const prefix = freshPrefix();
  const redis = new Redis(redisConfigFromEnv().url);
  t.teardown(async () => {
    await gmond.stop();
    await redis.quit();
    await deleteKeys(prefix);
  });
  const sender = gmetricSender({ host: '127.0.0.1', port: gmond.udpPort }, 'h');
  t.teardown(() => sender.close());
  const metrics = new MetricsStore(redis, prefix);
  const until = Date.now() + 10000;
  let results;
  do {
    await sender.send([{ name: 'load_one', value: 0.5, type: 'float', spoof: '10.0.0.9:xen09' }]);
    await new Promise((r) => setTimeout(r, 100));
    results = await pollOnce(
      [
        { host: '127.0.0.1', port: gmond.tcpPort },
        { host: '127.0.0.1', port: 1 },
      ],
      metrics,
      silentLogger,
    );
  } while (!(await metrics.latest('xen09')) && Date.now() < until);
  t.regex(results[1]!.error!, /^ganglia 127\.0\.0\.1:1: ECONNREFUSED/);
  t.is((await metrics.latest('xen09'))!.metrics.load_one!.v, 0.5);
});
