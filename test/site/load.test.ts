// Loading good site files: the paper's format unchanged, the extended format, and the serializer's round trip.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { loadSite } from '../../src/site/parse.ts';
import { serializeSite } from '../../src/site/serialize.ts';
import { formatIssue, type Site } from '../../src/site/model.ts';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');
const paper = fixture('paper-site.xml');
/** A site without source positions (they legitimately change when a file is rewritten). */
const meaning = (s: Site): unknown => JSON.parse(JSON.stringify(s, (k, v) => (k === 'pos' ? undefined : v)));

test('loads the paper site unchanged, with implied hosts and templates and warnings', (t) => {
  const r = loadSite(paper, 'paper-site.xml');
  if (!r.ok) return t.fail(r.errors.map(formatIssue).join('\n'));
  t.deepEqual(
    r.site.vms.map((v) => [v.name, v.set, v.config, v.host, v.vcpus, v.memMiB, v.hwaddr, v.ip]),
    [
      ['vm1', 'My_site', 'apache_svr', '192.168.5.101', 4, 96, 'aa:00:00:00:00:01', 'DHCP'],
      ['vm2', 'My_site', 'apache_svr', '192.168.5.102', 4, 96, 'aa:00:00:00:00:02', 'DHCP'],
      ['vm3', 'My_site', 'apache_svr', '192.168.5.103', 4, 96, 'aa:00:00:00:00:03', 'DHCP'],
      ['vm4', 'My_site', 'mysql_svr', '192.168.5.104', 4, 96, 'aa:00:00:00:00:04', 'DHCP'],
    ],
  );
  t.deepEqual(r.site.sets, [
    {
      name: 'My_site',
      owner: 'root@domain.com',
      vms: ['vm1', 'vm2', 'vm3', 'vm4'],
      pos: { file: 'paper-site.xml', line: 6, col: 3 },
    },
  ]);
  t.deepEqual(r.site.vms[2]?.pos, { file: 'paper-site.xml', line: 22, col: 5 });
  t.deepEqual(r.site.vms[0]?.placement, { pinned: false, noRebalance: false, priority: 0 });
  t.deepEqual(
    r.site.hosts.map((h) => [h.name, h.address, h.implied, h.cpus, h.memoryMiB]),
    ['101', '102', '103', '104'].map((n) => [`192.168.5.${n}`, `192.168.5.${n}`, true, 0, 0]),
  );
  t.deepEqual(
    r.site.templates.map((x) => [x.name, x.configFile, x.kernel, x.disks.length, x.implied]),
    [
      ['apache_svr', 'apache_svr.cfg', undefined, 0, true],
      ['mysql_svr', 'mysql_svr.cfg', undefined, 0, true],
    ],
  );
  t.deepEqual(
    r.warnings.map((w) => `${w.line}:${w.col} ${w.element}: ${w.message.split(':')[0]}`),
    [
      '8:5 VM[name=vm1]@config: apache_svr is no declared template',
      '9:7 VM[name=vm1]/DOM0: host 192.168.5.101 is not declared in <Hosts>',
      '16:7 VM[name=vm2]/DOM0: host 192.168.5.102 is not declared in <Hosts>',
      '23:7 VM[name=vm3]/DOM0: host 192.168.5.103 is not declared in <Hosts>',
      '29:5 VM[name=vm4]@config: mysql_svr is no declared template',
      '30:7 VM[name=vm4]/DOM0: host 192.168.5.104 is not declared in <Hosts>',
    ],
  );
});

test('loads the extended example of SITE-FORMAT.md', (t) => {
  const r = loadSite(fixture('extended-site.xml'), 'ext.xml');
  if (!r.ok) return t.fail(r.errors.map(formatIssue).join('\n'));
  t.deepEqual(r.warnings, []);
  t.deepEqual(meaning(r.site), {
    hosts: [
      {
        name: 'xen01',
        address: '192.168.5.101',
        bootMac: '52:54:00:00:00:01',
        cpus: 8,
        memoryMiB: 16384,
        maintenance: false,
        implied: false,
        power: { driver: 'ipmi', address: '10.0.0.201', user: 'admin', passwordFile: '/etc/xsm/secrets/xen01.pass' },
      },
    ],
    templates: [
      {
        name: 'apache_svr',
        type: 'pvh',
        kernel: '/srv/xen/kernels/vmlinuz',
        ramdisk: '/srv/xen/kernels/initrd.img',
        extra: 'console=hvc0 root=/dev/xvda1 ro',
        disks: [{ target: '/srv/xen/disks/{vm}.img', vdev: 'xvda', format: 'raw', access: 'rw' }],
        bridge: 'xenbr0',
        maxMemMiB: 1024,
        maxVcpus: 8,
        weight: 256,
        implied: false,
      },
    ],
    sets: [{ name: 'My_site', owner: 'root@domain.com', vms: ['vm1'] }],
    vms: [
      {
        name: 'vm1',
        set: 'My_site',
        config: 'apache_svr',
        host: 'xen01',
        vcpus: 4,
        memMiB: 96,
        hwaddr: 'aa:00:00:00:00:01',
        ip: 'DHCP',
        placement: { pinned: false, antiAffinity: 'web', noRebalance: false, priority: 10 },
      },
    ],
  });
});

test('round trip keeps meaning and a paper file stays a paper file', (t) => {
  const r1 = loadSite(paper, 'a.xml');
  if (!r1.ok) return t.fail();
  const xml = serializeSite(r1.site);
  t.false(xml.includes('<Hosts>'));
  t.false(xml.includes('<Templates>'));
  t.false(xml.includes('<Placement'));
  t.true(xml.includes('<DOM0>192.168.5.101</DOM0>') && xml.includes('<HWADDR>AA:00:00:00:00:01</HWADDR>'));
  const r2 = loadSite(xml, 'a.xml');
  if (!r2.ok) return t.fail(r2.errors.map(formatIssue).join('\n'));
  t.deepEqual(meaning(r2.site), meaning(r1.site));
  t.is(serializeSite(r2.site), xml, 'serializing is stable');
});

test('round trip of the extended format keeps hosts, templates, power, placement and escaped text', (t) => {
  const xml = `<XSMConfig>
  <Hosts>
    <Host name="xen01" address="10.0.0.1" mac="52:54:00:00:00:01" cpus="8" memory="4096" maintenance="true">
      <Power driver="ipmi" address="10.9.0.1" user="admin" passwordFile="/etc/xsm/secrets/bmc.pass"/>
    </Host>
    <Host name="xen02" address="xen02.lab" cpus="4" memory="2048"><Power driver="manual"/></Host>
  </Hosts>
  <Templates>
    <Template name="web" type="pv" maxmem="1024" maxvcpus="4" weight="512">
      <Kernel>/srv/xen/vmlinuz</Kernel>
      <Extra>console=hvc0 &amp; more &lt;x&gt;</Extra>
      <Disk target="/srv/xen/disks/{vm}.img" vdev="xvda" format="raw" access="rw"/>
      <Disk target="/srv/xen/disks/{vm}-data.qcow2" vdev="xvdb" format="qcow2" access="ro"/>
      <Bridge>xenbr1</Bridge>
    </Template>
    <Template name="win" type="hvm"><Disk target="/dev/vg0/{vm}" vdev="hda"/></Template>
  </Templates>
  <Set name="s">
    <Owner>ops &amp; friends &lt;ops@example.org&gt;</Owner>
    <VM name="a" config="web"><DOM0>10.0.0.1</DOM0><VCPUS>2</VCPUS><HWADDR>00-16-3E-00-00-01</HWADDR><IP>10.1.0.5</IP><MEM>512</MEM>
      <Placement pinned="true" antiAffinity="webs" rebalance="false" priority="7"/></VM>
    <VM name="b" config="win"><DOM0>xen02</DOM0><VCPUS>1</VCPUS><HWADDR>00:16:3e:00:00:02</HWADDR><IP>2001:db8::2</IP><MEM>1024</MEM></VM>
  </Set>
  <Set name="empty"/>
</XSMConfig>`;
  const r1 = loadSite(xml, 'x.xml');
  if (!r1.ok) return t.fail(r1.errors.map(formatIssue).join('\n'));
  const [a, b] = r1.site.vms;
  t.is(a?.host, 'xen01', 'DOM0 given as an address resolves to the host name');
  t.is(a?.hwaddr, '00:16:3e:00:00:01', 'MACs are normalised to lower-case colon form');
  t.is(b?.host, 'xen02');
  t.deepEqual(a?.placement, { pinned: true, antiAffinity: 'webs', noRebalance: true, priority: 7 });
  t.is(r1.site.templates[0]?.extra, 'console=hvc0 & more <x>');
  t.is(r1.site.sets[0]?.owner, 'ops & friends <ops@example.org>');
  t.true(r1.warnings.some((w) => /xen01 is in maintenance/.test(w.message)));
  const again = serializeSite(r1.site);
  const r2 = loadSite(again, 'x.xml');
  if (!r2.ok) return t.fail(r2.errors.map(formatIssue).join('\n'));
  t.deepEqual(meaning(r2.site), meaning(r1.site));
  t.is(serializeSite(r2.site), again);
});

test('an external inventory supplies hosts and capacity to a paper file', (t) => {
  const inventory = ['101', '102', '103', '104'].map((n) => ({
    name: `xen${n}`,
    address: `192.168.5.${n}`,
    cpus: 8,
    memoryMiB: 4096,
    maintenance: false,
    implied: false,
  }));
  const r = loadSite(paper, 'paper.xml', { inventory });
  if (!r.ok) return t.fail(r.errors.map(formatIssue).join('\n'));
  t.deepEqual(
    r.site.vms.map((v) => v.host),
    ['xen101', 'xen102', 'xen103', 'xen104'],
  );
  t.false(r.warnings.some((w) => /not declared in <Hosts>/.test(w.message)));
  const tight = loadSite(paper, 'paper.xml', { inventory: inventory.map((h) => ({ ...h, memoryMiB: 64 })) });
  t.false(tight.ok);
  if (!tight.ok)
    t.regex(
      formatIssue(tight.errors[0]!),
      /^paper\.xml:8:5: VM\[name=vm1\]: does not fit: vm1 needs 96 MiB but host xen101 has 64 MiB free of 64 \(32 MiB missing\)/,
    );
});
