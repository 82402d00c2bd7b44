// The xl driver against output recorded on real Xen: Debian's Xen 4.17.7 with a PVH Dom0 under qemu,
// a tiny PVH guest created, reconfigured live, crashed and destroyed (scripts/xen-lab-artifacts and
// scripts/xen-lab-boot recorded these; fixtures/real/README.md says how, and what failed there).
import test from 'ava';
import { readFileSync } from 'node:fs';
import { XlHypervisor } from '../../src/drivers/hypervisor/xl.ts';
import {
  hotplugTimeoutHint,
  isRefusal,
  parseXlInfo,
  parseXlList,
  parseXlListLong,
} from '../../src/drivers/hypervisor/xl-parse.ts';
import { HypervisorRefusal } from '../../src/drivers/hypervisor/hypervisor.ts';
import type { CommandResult, RunOptions, Shell } from '../../src/drivers/shell.ts';

const real = (f: string) => readFileSync(new URL(`./fixtures/real/${f}`, import.meta.url), 'utf8');

/** A Dom0 that answers `xl list` / `xl list -l` / `xl info` as the recorded one did at one moment. */
class RecordedDom0 implements Shell {
  readonly where = 'recorded-xen-4.17';
  calls: string[][] = [];
  constructor(
    private readonly moment: { list: string; long: string },
    private readonly failures: Record<string, CommandResult> = {},
  ) {}
  async run(program: string, args: readonly string[], _options: RunOptions = {}): Promise<CommandResult> {
    this.calls.push([program, ...args]);
    if (program !== 'xl') return { code: 0, stdout: '', stderr: '' };
    const fail = this.failures[args[0]!];
    if (fail) return fail;
    const key = args.join(' ');
    if (key === 'list') return { code: 0, stdout: real(this.moment.list), stderr: '' };
    if (key === 'list -l') return { code: 0, stdout: real(this.moment.long), stderr: '' };
    if (key === 'info') return { code: 0, stdout: real('xl-info.txt'), stderr: '' };
    return { code: 0, stdout: '', stderr: '' };
  }
}

test('real xl info: Xen 4.17.7, credit2, memory in MiB', (t) => {
  const i = parseXlInfo(real('xl-info.txt'));
  t.like(i, { xenVersion: '4.17.7', scheduler: 'credit2', totalMemMiB: 2047, freeMemMiB: 994, nrCpus: 2 });
  t.is(i.raw.get('xen_commandline')?.includes('dom0=pvh'), true);
});

test("real xl list and list -l agree on every domain's memory", (t) => {
  for (const [table, long] of [
    ['xl-list-running.txt', 'xl-list-l-running.json'],
    ['xl-list-after-reconfigure.txt', 'xl-list-l-after-reconfigure.json'],
  ] as const) {
    const rows = parseXlList(real(table));
    const details = new Map(parseXlListLong(real(long)).map((d) => [d.domid, d]));
    t.deepEqual(
      rows.map((r) => r.name),
      ['Domain-0', 'tiny'],
      table,
    );
    for (const r of rows) t.is(details.get(r.domid)?.targetMemMiB, r.memMiB, `${table}: ${r.name}`);
  }
});

test('the driver reads a real running guest, and the live reconfigure shows in both outputs', async (t) => {
  const before = await new XlHypervisor(
    new RecordedDom0({ list: 'xl-list-running.txt', long: 'xl-list-l-running.json' }),
    'xenlab',
  ).list();
  t.like(
    before.find((d) => d.name === 'tiny'),
    { domid: 2, state: 'blocked', memMiB: 96, maxMemMiB: 96, vcpus: 1, maxVcpus: 2, weight: 256 },
  );
  // Dom0 reports max_memkb 17179869180 ("no ceiling"): not a 16 TiB maximum.
  t.like(
    before.find((d) => d.domid === 0),
    { name: 'Domain-0', state: 'running', memMiB: 1023, maxMemMiB: 1023, vcpus: 2 },
  );
  const after = await new XlHypervisor(
    new RecordedDom0({ list: 'xl-list-after-reconfigure.txt', long: 'xl-list-l-after-reconfigure.json' }),
    'xenlab',
  ).find('tiny');
  t.like(after, { memMiB: 80, vcpus: 2, maxVcpus: 2 }, 'after `xl mem-set tiny 80m` and `xl vcpu-set tiny 2`');
  t.is(parseXlListLong(real('xl-list-l-after-reconfigure.json')).find((d) => d.name === 'tiny')?.availVcpus, 2);
});

test('a real crashed guest reads as crashed (---sc-), not running', async (t) => {
  const tiny = await new XlHypervisor(
    new RecordedDom0({ list: 'xl-list-crashed.txt', long: 'xl-list-l-crashed.json' }),
    'xenlab',
  ).find('tiny');
  t.is(tiny?.state, 'crashed');
  t.deepEqual(
    parseXlList(real('xl-list-after-destroy.txt')).map((r) => r.name),
    ['Domain-0'],
  );
});

test('a real xl create that cannot fit the kernel is a permanent refusal; the working create is not', async (t) => {
  const tooSmall = real('xl-create-pvh-64.txt');
  t.true(isRefusal(tooSmall));
  t.false(isRefusal(real('xl-create.txt')));
  const shell = new RecordedDom0(
    { list: 'xl-list.txt', long: 'xl-list-l.json' },
    { create: { code: 3, stdout: '', stderr: tooSmall } },
  );
  const e = await t.throwsAsync(
    new XlHypervisor(shell, 'xenlab').create({ name: 'tiny', text: 'name = "tiny"\nmemory = 64\n' }),
  );
  t.true(e instanceof HypervisorRefusal, 'retrying cannot make 64 MiB hold the kernel');
  t.regex(e!.message, /^xenlab: [\s\S]*segment kernel too large/);
});

test('a guest `xl list` shows but `xl list -l` does not yet (being built) has its ceilings marked unknown', async (t) => {
  // Seen in the qemu lab (test/xen-lab/results/qemu-deploy): during `xl create`, `xl list` already had the
  // guest while `xl list -l` still showed Dom0 alone. The two real outputs of those moments, together.
  const hv = new XlHypervisor(new RecordedDom0({ list: 'xl-list-running.txt', long: 'xl-list-l.json' }), 'xenlab');
  const tiny = await hv.find('tiny');
  t.truthy(tiny);
  t.is(tiny!.limitsUnknown, true);
  t.is(tiny!.maxVcpus, tiny!.vcpus, 'the fallback is its current size, which the planner must not trust');
  const dom0 = await hv.find('Domain-0');
  t.is(dom0!.limitsUnknown, undefined);
  const both = new XlHypervisor(
    new RecordedDom0({ list: 'xl-list-running.txt', long: 'xl-list-l-running.json' }),
    'xenlab',
  );
  t.like(await both.find('tiny'), { maxVcpus: 2, limitsUnknown: undefined });
});

test("a real block hotplug timeout: the create's error says the disk was not attached and what to time", async (t) => {
  const stderr = real('xl-create-block-hotplug-timeout.txt');
  const dom0 = new RecordedDom0(
    { list: 'xl-list-running.txt', long: 'xl-list-l-running.json' },
    { create: { code: 3, stdout: '', stderr: `Parsing config from /etc/xen/xsm/tiny.cfg\n${stderr}` } },
  );
  const err = await t.throwsAsync(new XlHypervisor(dom0, 'nhost1').create({ name: 'tiny', text: 'name = "tiny"\n' }));
  // libxl's own lines stay, for whoever reads the job's error.
  t.true(err.message.includes('unable to add disk devices'));
  t.regex(err.message, /hotplug script `\/etc\/xen\/scripts\/block add` outlasted libxl's timeout/);
  t.regex(err.message, /disk was not attached; if the Dom0 is not starved, time `losetup -f --show FILE`/);
  t.regex(err.message, /First look for a starved Dom0: soft lockups in its `dmesg`/);
  t.regex(err.message, /xen-hotplug\.log/);
  t.false(err instanceof HypervisorRefusal, 'a timeout is not a refusal: the create may succeed when retried');
  t.is(hotplugTimeoutHint('libxl: error: libxl_create.c: Domain 1:some other failure'), undefined);
  t.regex(
    hotplugTimeoutHint(
      'libxl: error: libxl_aoutils.c:539:async_exec_timeout: killing execution of /etc/xen/scripts/vif-bridge online because of timeout',
    ) ?? '',
    /network interface was not attached/,
  );
});
