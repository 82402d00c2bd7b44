import test from 'ava';
import { readFileSync } from 'node:fs';
import {
  applyXlOverrides,
  overrideVif,
  parseXlConfig,
  XlConfigError,
  xlConfigName,
  xlValue,
} from '../../src/site/xl-config.ts';
import { readDomainConfig } from '../../src/drivers/hypervisor/domain-config.ts';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/xl/${name}`, import.meta.url), 'utf8');
const apache = fixture('apache_svr.cfg');
const mysql = fixture('mysql_svr.cfg');

test('reads a real-looking config: strings in both quotes, numbers, multi-line lists with comments, ; separators', (t) => {
  const e = parseXlConfig(apache);
  t.deepEqual(
    e.map((x) => x.key),
    [
      'name',
      'type',
      'bootloader',
      'memory',
      'maxmem',
      'vcpus',
      'maxvcpus',
      'vif',
      'disk',
      'on_poweroff',
      'on_reboot',
      'on_crash',
    ],
  );
  t.deepEqual(xlValue(e, 'memory'), { kind: 'number', value: '128' });
  t.deepEqual(xlValue(e, 'on_crash'), { kind: 'string', value: 'restart' });
  t.deepEqual(xlValue(e, 'disk'), {
    kind: 'list',
    items: [
      'format=raw, vdev=xvda, access=rw, target=/srv/xen/disks/apache-root.img',
      '/srv/xen/disks/apache-www.img,raw,xvdb,ro',
    ],
  });
  const disk = e.find((x) => x.key === 'disk')!;
  t.is(disk.line, 24);
  t.is(xlConfigName(mysql), 'mysql_svr');
});

test('reads the xl.cfg(5) value forms: hex and octal numbers, bare words, += and escapes', (t) => {
  const e = parseXlConfig('memory=0x100; vcpus = 010\nextra = "a \\"q\\" b"\nextra += " more"\ncpus = all\n');
  t.deepEqual(xlValue(e, 'memory'), { kind: 'number', value: '0x100' });
  t.deepEqual(xlValue(e, 'vcpus'), { kind: 'number', value: '010' });
  t.deepEqual(xlValue(e, 'extra'), { kind: 'string', value: 'a "q" b' });
  t.true(e.find((x) => x.key === 'extra' && x.append) !== undefined);
  t.deepEqual(xlValue(e, 'cpus'), { kind: 'string', value: 'all' });
});

test('gives every setting its line and column, and a problem after many lines its own', (t) => {
  const text =
    '# header\n\nname = "vm1"\n  memory = 512 ; vcpus = 2\ndisk = [ "a",\n  # inside\n  "b" ]\n\tmaxmem = 1024\n';
  t.deepEqual(
    parseXlConfig(text).map((e) => [e.key, e.line, e.col]),
    [
      ['name', 3, 1],
      ['memory', 4, 3],
      ['vcpus', 4, 18],
      ['disk', 5, 1],
      ['maxmem', 8, 2],
    ],
  );
  const err = t.throws(() => parseXlConfig(`${text}extra = "x\n`), { instanceOf: XlConfigError });
  t.is(err?.message, '9:9: string opened here is not closed with "');
});

test('refuses a broken file at its line and column', (t) => {
  const cases: [string, string][] = [
    ['name = "vm1\nmemory = 5\n', '1:8: string opened here is not closed with "'],
    ['name = "vm1"\nmemory 5\n', '2:8: expected = after memory'],
    ['disk = [ "a",\n  "b"\n', '1:8: list opened here is not closed with ]'],
    ['vcpus = 2 3\n', '1:11: expected a new line or ; after the value, found "3"'],
    ['memory =\n', '1:9: a setting needs a value'],
    ['= 5\n', '1:1: expected a setting name, found "="'],
  ];
  for (const [text, message] of cases) {
    const err = t.throws(() => parseXlConfig(text), { instanceOf: XlConfigError });
    t.is(err?.message, message, text);
  }
});

test("sets the VM's name, memory, vcpus and first vif over the file and keeps every other byte", (t) => {
  const out = applyXlOverrides(apache, {
    name: 'vm1',
    memMiB: 96,
    vcpus: 4,
    hwaddr: 'aa:00:00:00:00:01',
    ip: 'DHCP',
  });
  const expected = apache
    .replace('name = "apache_svr"', 'name = "vm1"')
    .replace('memory = 128', 'memory = 96')
    .replace('vcpus = 1\n', 'vcpus = 4\n')
    .replace(
      "vif = [ 'bridge=xenbr0,mac=00:16:3e:aa:bb:01', 'bridge=xenbr1' ]",
      "vif = [ 'bridge=xenbr0,mac=aa:00:00:00:00:01', 'bridge=xenbr1' ]",
    );
  t.is(out, expected);
  // The simulator and xl read what was written.
  const d = readDomainConfig(out);
  t.deepEqual(
    { name: d.name, mem: d.memMiB, max: d.maxMemMiB, vcpus: d.vcpus, maxv: d.maxVcpus },
    { name: 'vm1', mem: 96, max: 512, vcpus: 4, maxv: 4 },
  );
  t.deepEqual(d.nics, [{ mac: 'aa:00:00:00:00:01' }]);
});

test('raises maxmem/maxvcpus the file sets below the VM, writes a static IP into the vif, adds missing keys', (t) => {
  const out = applyXlOverrides(mysql, { name: 'vm4', memMiB: 1024, vcpus: 4, hwaddr: 'aa:00:00:00:00:04', ip: 'DHCP' });
  t.regex(out, /^memory {2}= 1024$/m);
  t.regex(out, /^vif {5}= \[ 'mac=aa:00:00:00:00:04,bridge=xenbr0' \]$/m); // DHCP: the file's ip= goes
  t.true(out.includes('cpu_weight = 512'));
  t.true(out.includes("'phy:/dev/vg0/mysql-root,xvda,w'"));
  const small = applyXlOverrides('name="x"\nmemory=64\nmaxmem=128\nvcpus=1\nmaxvcpus=1 # no growth\n', {
    name: 'db',
    memMiB: 256,
    vcpus: 2,
    hwaddr: '00:16:3e:00:00:09',
    ip: '10.0.0.9',
  });
  t.is(
    small,
    'name="db"\nmemory=256\nmaxmem=256\nvcpus=2\nmaxvcpus=2 # no growth\n' +
      "# Added by XSM from the site file:\nvif = [ 'bridge=xenbr0,mac=00:16:3e:00:00:09,ip=10.0.0.9' ]\n",
  );
});

test('a file whose name, memory or vif XSM sets is written with += is refused at its place', (t) => {
  const err = t.throws(
    () =>
      applyXlOverrides('name = "a"\nmemory = 64\nvif += [ "bridge=xenbr1" ]\n', {
        name: 'a',
        memMiB: 64,
        vcpus: 1,
        hwaddr: '00:16:3e:00:00:01',
        ip: 'DHCP',
      }),
    { instanceOf: XlConfigError },
  );
  t.regex(err!.message, /^3:1: XSM sets name, memory, vcpus and vif itself/);
});

test('overrideVif replaces mac and ip in place and keeps the other keys', (t) => {
  t.is(
    overrideVif('mac=00:16:3e:00:00:01, bridge=br1 ,rate=10Mb/s', 'aa:00:00:00:00:02', 'DHCP'),
    'mac=aa:00:00:00:00:02,bridge=br1,rate=10Mb/s',
  );
  t.is(
    overrideVif('bridge=br1,ip=10.0.0.1', 'aa:00:00:00:00:02', '10.0.0.7'),
    'bridge=br1,ip=10.0.0.7,mac=aa:00:00:00:00:02',
  );
});
