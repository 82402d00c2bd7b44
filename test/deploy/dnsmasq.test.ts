import test from 'ava';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/lib/log.ts';
import {
  DnsmasqService,
  renderXenIpxe,
  renderHostsFile,
  renderPxelinux,
  pxelinuxName,
  macHexhyp,
  renderInstallerIpxe,
  parseInstallerIpxe,
} from '../../src/deploy/dnsmasq.ts';

// These run the real dnsmasq (`--test`); bash scripts/setup installs it, as CI does.
const withDnsmasq = existsSync('/usr/sbin/dnsmasq') ? test : test.skip;

async function service(t: { teardown(fn: () => Promise<void>): void }) {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-dnsmasq-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return new DnsmasqService(
    {
      stateDir: join(dir, 'state'),
      tftpRoot: join(dir, 'tftp'),
      interface: 'xsmbr-none',
      serverAddress: '10.20.0.1',
      network: '10.20.0.0',
      netmask: '255.255.255.0',
    },
    silentLogger,
  );
}

withDnsmasq('the main config passes `dnsmasq --test` and is rewritten only when it changes', async (t) => {
  const s = await service(t);
  t.true(await s.writeMainConf());
  t.false(await s.writeMainConf());
  const conf = await readFile(join(s.config.stateDir, 'dnsmasq.conf'), 'utf8');
  t.regex(conf, /^port=0$/m);
  t.regex(conf, /^dhcp-range=10\.20\.0\.0,static,255\.255\.255\.0,12h$/m);
  t.regex(conf, /^dhcp-boot=tag:ipxe,tftp:\/\/10\.20\.0\.1\/\$\{mac:hexhyp\}\.ipxe$/m);
});

withDnsmasq("a config dnsmasq rejects is refused with dnsmasq's message and the old file stays", async (t) => {
  const s = await service(t);
  await s.writeMainConf();
  const bad = join(s.config.stateDir, 'bad.conf');
  await writeFile(bad, 'dhcp-range=nonsense,,,\nno-such-option=1\n');
  await t.throwsAsync(s.test(bad), { message: /dnsmasq config .*bad\.conf rejected: .*(bad|line)/ });
});

withDnsmasq('host entries go to the hosts file; a duplicate MAC names both hosts', async (t) => {
  t.is(
    renderHostsFile([{ mac: '52:54:00:AA:00:01', address: '10.20.0.21', hostname: 'xen01' }]),
    '52:54:00:aa:00:01,10.20.0.21,xen01,infinite\n',
  );
  t.throws(
    () =>
      renderHostsFile([
        { mac: '52:54:00:aa:00:01', address: '10.20.0.21', hostname: 'xen01' },
        { mac: '52-54-00-AA-00-01', address: '10.20.0.22', hostname: 'xen02' },
      ]),
    { message: /host xen02: MAC 52:54:00:aa:00:01 is already used by host xen01/ },
  );
  const s = await service(t);
  await s.writeMainConf();
  await s.setHost({ mac: '52:54:00:aa:00:01', address: '10.20.0.21', hostname: 'xen01' }, '#!ipxe\nexit\n');
  await s.setHost({ mac: '52:54:00:aa:00:02', address: '10.20.0.22', hostname: 'xen02' }, '#!ipxe\nexit\n');
  t.is((await readFile(join(s.config.stateDir, 'hosts'), 'utf8')).split('\n').filter(Boolean).length, 2);
  t.is(await readFile(join(s.config.tftpRoot, '52-54-00-aa-00-02.ipxe'), 'utf8'), '#!ipxe\nexit\n');
});

test('the Xen iPXE script multiboots xen + dom0 and refuses command lines over 512 bytes', (t) => {
  const spec = {
    baseUrl: 'http://10.20.0.1/xen',
    xen: 'xen-4.17',
    xenArgs: 'dom0_mem=4096M,max:4096M console=com1',
    kernel: 'vmlinuz',
    kernelArgs: 'root=/dev/sda2 ro console=hvc0',
    initrd: 'initrd.img',
  };
  t.is(
    renderXenIpxe('xen01', spec),
    '#!ipxe\nkernel http://10.20.0.1/xen/xen-4.17 dom0_mem=4096M,max:4096M console=com1\nmodule http://10.20.0.1/xen/vmlinuz root=/dev/sda2 ro console=hvc0\nmodule http://10.20.0.1/xen/initrd.img\nboot\n',
  );
  t.throws(() => renderXenIpxe('xen01', { ...spec, kernelArgs: 'x'.repeat(450) }), {
    message: /host xen01: .* over iPXE's 512-byte multiboot limit/,
  });
  t.is(
    renderPxelinux(spec).split('\n')[3],
    '  APPEND xen-4.17 dom0_mem=4096M,max:4096M console=com1 --- vmlinuz root=/dev/sda2 ro console=hvc0 --- initrd.img',
  );
  t.is(pxelinuxName('52:54:00:AB:CD:EF'), '01-52-54-00-ab-cd-ef');
  t.is(macHexhyp('52:54:00:AB:CD:EF'), '52-54-00-ab-cd-ef');
});

test('the installer script carries its parameters and they read back', (t) => {
  const p = {
    hostname: 'xen01',
    address: '10.20.0.21',
    netmask: '255.255.255.0',
    image: 'rsync://10.20.0.1:8730/images/xen.img',
  };
  const text = renderInstallerIpxe('tftp://10.20.0.1', p);
  t.deepEqual(parseInstallerIpxe(text, 'xen01'), { ...p, gateway: undefined });
  t.throws(() => parseInstallerIpxe('#!ipxe\nexit\n', 'xen01'), { message: /xen01: boot script has no kernel line/ });
});
