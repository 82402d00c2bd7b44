import test from 'ava';
import { readFileSync } from 'node:fs';
import { XlHypervisor } from '../../src/drivers/hypervisor/xl.ts';
import { decodeState, parseXlInfo, parseXlList, parseXlListLong } from '../../src/drivers/hypervisor/xl-parse.ts';
import { HypervisorRefusal } from '../../src/drivers/hypervisor/hypervisor.ts';
import type { CommandResult, RunOptions, Shell } from '../../src/drivers/shell.ts';

const fx = (f: string) => readFileSync(new URL(`./fixtures/${f}`, import.meta.url), 'utf8');

/** Answers each command with recorded xl output and keeps the calls, as a Dom0 would see them. */
class RecordedShell implements Shell {
  readonly where = 'recorded';
  calls: { program: string; args: string[]; input?: string }[] = [];
  /** The time limit each call was given, in call order (undefined: none). */
  timeouts: (number | undefined)[] = [];
  constructor(private readonly answers: (program: string, args: string[]) => CommandResult) {}
  async run(program: string, args: readonly string[], options: RunOptions = {}): Promise<CommandResult> {
    this.timeouts.push(options.timeoutMs);
    this.calls.push({
      program,
      args: [...args],
      ...(options.input !== undefined ? { input: String(options.input) } : {}),
    });
    return this.answers(program, [...args]);
  }
}
const ok = (stdout = ''): CommandResult => ({ code: 0, stdout, stderr: '' });
function recorded(extra: (args: string[]) => CommandResult | undefined = () => undefined) {
  return new RecordedShell((program, args) => {
    const e = extra(args);
    if (e) return e;
    if (program !== 'xl') return ok();
    if (args.join(' ') === 'list') return ok(fx('xl-list.txt'));
    if (args.join(' ') === 'list -l') return ok(fx('xl-list-l.json'));
    if (args[0] === 'info') return ok(fx('xl-info.txt'));
    return ok();
  });
}

test('decodes the six state letters, including a crash shown as ---sc-', (t) => {
  t.is(decodeState('r-----'), 'running');
  t.is(decodeState('-b----'), 'blocked');
  t.is(decodeState('--p---'), 'paused');
  t.is(decodeState('---s--'), 'shutdown');
  t.is(decodeState('---sc-'), 'crashed');
  t.is(decodeState('-----d'), 'dying');
  t.throws(() => decodeState('rb'));
});

test('parses xl list, xl list -l (KiB, omitted fields) and xl info', (t) => {
  const rows = parseXlList(fx('xl-list.txt'));
  t.deepEqual(
    rows.map((r) => [r.name, r.domid, r.memMiB, r.vcpus, r.state]),
    [
      ['Domain-0', 0, 750, 4, 'running'],
      ['linux', 2, 2048, 2, 'running'],
      ['web01', 5, 512, 1, 'blocked'],
      ['crashed1', 7, 256, 1, 'crashed'],
    ],
  );
  const long = parseXlListLong(fx('xl-list-l.json'));
  t.like(long[1], {
    domid: 2,
    name: 'linux',
    maxMemMiB: 4096,
    targetMemMiB: 2048,
    maxVcpus: 4,
    availVcpus: 2,
    weight: 512,
  });
  t.is(long[2]?.maxVcpus, undefined);
  const info = parseXlInfo(fx('xl-info.txt'));
  t.like(info, {
    host: 'xenhost01',
    totalMemMiB: 65413,
    freeMemMiB: 40127,
    nrCpus: 16,
    xenVersion: '4.17.3',
    scheduler: 'credit2',
  });
});

test('xl create is given 120 s by default, and the time an agent configures (XSM_XL_CREATE_TIMEOUT_S)', async (t) => {
  const shell = recorded();
  await new XlHypervisor(shell, 'xenhost01').create({ name: 'vm1', text: 'name = "vm1"\n' });
  t.is(shell.timeouts.at(-1), 120_000);
  await new XlHypervisor(shell, 'xenhost01', { createTimeoutMs: 600_000 }).create({
    name: 'vm1',
    text: 'name = "vm1"\n',
  });
  t.deepEqual(shell.calls.at(-1)?.args, ['create', '/etc/xen/xsm/vm1.cfg']);
  t.is(shell.timeouts.at(-1), 600_000);
});

test('the xl driver merges list and list -l, writes configs with tee and sets memory in explicit MiB', async (t) => {
  const shell = recorded();
  const xl = new XlHypervisor(shell, 'xenhost01');
  const linux = await xl.find('linux');
  t.like(linux, { domid: 2, memMiB: 2048, maxMemMiB: 4096, vcpus: 2, maxVcpus: 4, weight: 512, cpuTimeSec: 5624.2 });
  await xl.create({ name: 'vm1', text: 'name = "vm1"\nmemory = 256\n' });
  const tee = shell.calls.find((c) => c.program === 'tee')!;
  t.deepEqual(tee.args, ['/etc/xen/xsm/vm1.cfg']);
  t.is(tee.input, 'name = "vm1"\nmemory = 256\n');
  t.deepEqual(shell.calls.at(-1), { program: 'xl', args: ['create', '/etc/xen/xsm/vm1.cfg'] });
  await xl.setMemory('vm1', 512);
  t.deepEqual(shell.calls.at(-1)?.args, ['mem-set', 'vm1', '512m']);
  await xl.setWeight('vm1', 300);
  t.deepEqual(
    shell.calls.at(-1)?.args,
    ['sched-credit2', '-d', 'vm1', '-w', '300'],
    'credit2 host: sched-credit would fail',
  );
  await xl.migrate('vm1', { host: 'xen02', address: '10.0.0.2' });
  t.deepEqual(shell.calls.at(-1)?.args, [
    'migrate',
    '-s',
    'ssh -o BatchMode=yes -o StrictHostKeyChecking=yes',
    'vm1',
    '10.0.0.2',
  ]);
});

test('xl refusals become permanent HypervisorRefusal, other failures stay transient', async (t) => {
  const shell = recorded((args) => {
    if (args[0] === 'create')
      return {
        code: 1,
        stdout: '',
        stderr:
          'Parsing config from /etc/xen/xsm/vm1.cfg\nlibxl: error: libxl_domain.c:123: Domain with name "vm1" already exists.\n',
      };
    if (args[0] === 'vcpu-set')
      return { code: 1, stdout: '', stderr: 'xl: cannot connect to xenstored: Connection refused\n' };
    return undefined;
  });
  const xl = new XlHypervisor(shell, 'xenhost01');
  const e = await t.throwsAsync(xl.create({ name: 'vm1', text: 'name = "vm1"\n' }));
  t.true(e instanceof HypervisorRefusal);
  t.regex(e!.message, /^xenhost01: recorded: `xl create \/etc\/xen\/xsm\/vm1.cfg` exited 1: [\s\S]*already exists/);
  const e2 = await t.throwsAsync(xl.setVcpus('vm1', 2));
  t.false(e2 instanceof HypervisorRefusal);
  t.regex(e2!.message, /cannot connect to xenstored/);
});

test("lists the operator's config files with find + sha256sum, reads each new one once, and never leaves the directory", async (t) => {
  const apache = 'name = "apache_svr"\nmemory = 128\n';
  const sum = 'a'.repeat(64);
  const shell = new RecordedShell((program, args) => {
    if (program === 'find')
      return ok(
        `${sum}  /etc/xen/apache_svr.cfg\n${'b'.repeat(64)}  /etc/xen/bad name.cfg\n${'c'.repeat(64)}  /etc/xenother/x.cfg\n`,
      );
    if (program === 'cat' && args[1] === '/etc/xen/apache_svr.cfg') return ok(apache);
    if (program === 'cat') return { code: 1, stdout: '', stderr: `cat: ${args[1]}: No such file or directory` };
    return ok();
  });
  const xl = new XlHypervisor(shell, 'xen01');
  const want = { dir: '/etc/xen', files: [{ name: 'apache_svr.cfg', sha256: sum, domain: 'apache_svr' }] };
  t.deepEqual(await xl.configFiles(), want);
  t.deepEqual(await xl.configFiles(), want);
  t.deepEqual(shell.calls[0], {
    program: 'find',
    args: ['/etc/xen', '-maxdepth', '1', '-type', 'f', '-name', '*.cfg', '-exec', 'sha256sum', '{}', '+'],
  });
  t.is(shell.calls.filter((c) => c.program === 'cat').length, 1, 'an unchanged file is not read again');
  t.is(await xl.readConfigFile('missing.cfg'), undefined);
  t.is(await xl.readConfigFile('../shadow.cfg'), undefined);
  t.false(shell.calls.some((c) => c.args.includes('/etc/shadow.cfg') || c.args.includes('/etc/xen/../shadow.cfg')));
});

test("reads each running domain's NICs from `xl list -l`", async (t) => {
  const xl = new XlHypervisor(recorded(), 'xen01');
  const withNics = (await xl.list()).filter((d) => d.nics).map((d) => [d.name, d.nics]);
  t.deepEqual(withNics, [['linux', [{ mac: '00:16:3e:12:34:56' }]]]);
});

test('a shutdown by domid names the domid to xl: a gone instance is nothing to stop, and a timeout destroys that instance only', async (t) => {
  // What xl 4.17 prints for a domid that no longer exists (the instance stopped; a new one may have the name).
  const gone: CommandResult = { code: 1, stdout: '', stderr: 'xl: 7 is an invalid domain identifier (rc=-6)\n' };
  const shell = recorded((args) => (args[0] === 'shutdown' && args[2] === '7' ? gone : undefined));
  const xl = new XlHypervisor(shell, 'xenhost01');
  await xl.shutdown('vm1', 1000, 7);
  t.deepEqual(
    shell.calls.map((c) => c.args.join(' ')),
    ['shutdown -w 7'],
    'no destroy, and never the name',
  );

  const slow = recorded((args) =>
    args[0] === 'shutdown' ? { code: 124, stdout: '', stderr: 'timed out' } : undefined,
  );
  await new XlHypervisor(slow, 'xenhost01').shutdown('vm1', 1000, 9);
  t.deepEqual(
    slow.calls.map((c) => c.args.join(' ')),
    ['shutdown -w 9', 'destroy 9'],
  );

  const byName = recorded();
  await new XlHypervisor(byName, 'xenhost01').shutdown('vm1', 1000);
  t.deepEqual(
    byName.calls.map((c) => c.args.join(' ')),
    ['shutdown -w vm1'],
  );
});
