// Scenarios with the paper's config files: VMs run from xl config files on their Dom0s, through the real
// path (submit, apply, host agents, simulated Xen), checked against the invariants. A file missing on a
// target host refuses the plan before anything is stored; a file removed after the plan was stored stops
// that action as stale and leaves the VM running where it was.
import test from 'ava';
import { registerScenarios, runScenario, type Scenario } from './runner.ts';

const HOSTS = [
  { name: 'h1', memMiB: 1024 },
  { name: 'h2', memMiB: 1024 },
];

const scenarios: Scenario[] = [
  {
    name: 'config files: VMs from apache_svr.cfg and mysql_svr.cfg are created, one moved live and resized',
    hosts: HOSTS,
    steps: [
      {
        submit: [
          { name: 'web', host: 'h1', mem: 128, config: 'apache_svr' },
          { name: 'db', host: 'h2', mem: 256, vcpus: 2, config: 'mysql_svr' },
        ],
        expect: 'stored',
      },
      {
        submit: [
          { name: 'web', host: 'h2', mem: 128, config: 'apache_svr' },
          { name: 'db', host: 'h2', mem: 256, vcpus: 3, config: 'mysql_svr' },
        ],
        expect: 'stored',
      },
    ],
    ends: 'converged',
  },
  {
    name: 'config files: a move to a Dom0 without the file is refused at plan time and nothing runs',
    hosts: HOSTS,
    steps: [
      { submit: [{ name: 'db', host: 'h1', mem: 256, config: 'mysql_svr' }], expect: 'stored' },
      { removeConfigFile: 'mysql_svr.cfg', host: 'h2' },
      { submit: [{ name: 'db', host: 'h2', mem: 256, config: 'mysql_svr' }], expect: 'refused' },
      { submit: [{ name: 'web', host: 'h2', mem: 128, config: 'mysql_svr' }], expect: 'refused' },
    ],
    ends: 'converged',
  },
  {
    name: 'config files: a file removed after the plan was stored stops the move as stale; the VM stays up',
    hosts: HOSTS,
    steps: [
      { submit: [{ name: 'web', host: 'h1', mem: 128, config: 'apache_svr' }], expect: 'stored' },
      { submit: [{ name: 'web', host: 'h2', mem: 128, config: 'apache_svr' }], expect: 'stored', apply: false },
      { removeConfigFile: 'apache_svr.cfg', host: 'h2' },
      { applyCurrent: true },
    ],
    ends: 'partially-failed',
  },
];

registerScenarios(test, scenarios);

test.serial('config files: the stale move names the file that went, and ran no xl call on h2', async (t) => {
  const { trace, problems } = await runScenario({ ...scenarios[2]!, name: 'config files: stale move, reasons' });
  t.deepEqual(problems, []);
  const failed = trace.outcome?.actions.find((a) => a.id === 'migrate:web');
  t.is(failed?.outcome, 'failed');
  t.regex(failed?.reason ?? '', /plan is stale: config file apache_svr\.cfg is no longer on h2/);
  t.true(trace.states.every((w) => !w.hosts.h2?.some((d) => d.name === 'web')));
});
