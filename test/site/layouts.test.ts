// Disk layouts in the site file (<Hosts><Layout>): per host or for the whole class of <Hosts>, each
// refusal located at the line an operator must fix, and written back unchanged.
import test from 'ava';
import { loadSite } from '../../src/site/parse.ts';
import { formatIssue, type LoadResult } from '../../src/site/model.ts';
import { serializeSite } from '../../src/site/serialize.ts';

function file(hostsAttrs: string, layouts: string[], hostAttrs = ''): string {
  return [
    '<XSMConfig>',
    `  <Hosts${hostsAttrs}>`,
    ...layouts,
    `    <Host name="xen01" address="10.0.0.1" mac="52:54:00:00:00:01" cpus="4" memory="1024"${hostAttrs}/>`,
    '    <Host name="xen02" address="10.0.0.2" cpus="4" memory="1024"/>',
    '  </Hosts>',
    '</XSMConfig>',
  ].join('\n');
}

function errors(r: LoadResult): string[] {
  return r.ok ? [] : r.errors.map(formatIssue);
}

const VG_MIRROR = [
  '    <Layout name="mirror" swap="2048" root="20480">',
  '      <VolumeGroup name="vg0"/>',
  '      <Raid1 disks="/dev/sda /dev/sdb"/>',
  '    </Layout>',
];

test('a class layout on <Hosts> applies to every host; a Host layout="" overrides it', (t) => {
  const r = loadSite(
    file(' layout="mirror"', [...VG_MIRROR, '    <Layout name="small" swap="0"/>'], ' layout="small"'),
    's.xml',
  );
  if (!r.ok) return t.fail(errors(r).join('\n'));
  t.deepEqual(
    r.site.hosts.map((h) => [h.name, h.layout]),
    [
      ['xen01', 'small'],
      ['xen02', 'mirror'],
    ],
  );
  const mirror = r.site.layouts!.find((l) => l.name === 'mirror')!;
  t.deepEqual(
    { ...mirror, pos: undefined },
    {
      name: 'mirror',
      swapMiB: 2048,
      rootMiB: 20480,
      fs: 'ext4',
      volumeGroup: { name: 'vg0' },
      raid1: ['/dev/sda', '/dev/sdb'],
      pos: undefined,
    },
  );
});

test('layouts survive serialisation: the written file loads to the same layouts and host choices', (t) => {
  const r = loadSite(file(' layout="mirror"', [...VG_MIRROR, '    <Layout name="small" swap="0"/>']), 's.xml');
  if (!r.ok) return t.fail(errors(r).join('\n'));
  const again = loadSite(serializeSite(r.site), 'again.xml');
  if (!again.ok) return t.fail(errors(again).join('\n'));
  const strip = (ls: typeof r.site.layouts) => ls?.map((l) => ({ ...l, pos: undefined }));
  t.deepEqual(strip(again.site.layouts), strip(r.site.layouts));
  t.deepEqual(
    again.site.hosts.map((h) => h.layout),
    r.site.hosts.map((h) => h.layout),
  );
});

test('each bad layout is refused at its own line, saying what to give', (t) => {
  const r = loadSite(
    file('', [
      '    <Layout name="a" swap="-1" root="10" fs="xfs"/>',
      '    <Layout name="b">',
      '      <Raid1 disks="/dev/sda"/>',
      '      <VolumeGroup name="../vg" size="12"/>',
      '    </Layout>',
      '    <Layout name="c"><Raid1 disks="/dev/sda /dev/sda"/></Layout>',
      '    <Layout name="c"/>',
    ]),
    'bad.xml',
  );
  t.deepEqual(errors(r), [
    'bad.xml:3:5: Layout[name=a]@swap: swap (MiB) "-1" is not a whole decimal number',
    'bad.xml:3:5: Layout[name=a]@root: root (MiB) 10 is out of range (64..1073741824)',
    'bad.xml:3:5: Layout[name=a]@fs: fs "xfs": the root file system is the Dom0 image\'s, and the images are ext4; give fs="ext4" or leave it out',
    'bad.xml:5:7: Layout[name=b]/Raid1@disks: RAID1 mirrors two disks: give disks="/dev/sda /dev/sdb" (got 1)',
    "bad.xml:6:7: Layout[name=b]/VolumeGroup: volume group name \"../vg\" is not a safe name: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
    'bad.xml:6:7: Layout[name=b]/VolumeGroup@size: size (MiB) 12 is out of range (1024..1073741824)',
    'bad.xml:8:22: Layout[name=c]/Raid1@disks: both halves of the mirror are /dev/sda; give two different disks',
    'bad.xml:9:5: Layout[name=c]: layout c is declared twice; give each Layout its own name',
  ]);
});

test('a host or class naming a layout that is not declared is refused at that element', (t) => {
  const r = loadSite(file(' layout="nope"', ['    <Layout name="small" swap="0"/>'], ' layout="typo"'), 'n.xml');
  t.deepEqual(errors(r), [
    'n.xml:2:3: Hosts@layout: layout "nope" is not declared; declared: small',
    'n.xml:4:5: Host[name=xen01]@layout: layout "typo" is not declared; declared: small',
  ]);
});
