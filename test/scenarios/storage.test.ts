// Storage scenarios: VMs whose disks XSM makes from template images in file, LVM and NFS pools, run through the
// real path on the simulator and checked against every invariant, plus what each scenario is about (where the
// disks are, what was copied, what was refused and why, that a resumed disk step did not redo its work).
import test from 'ava';
import { SimPoolStore, imageSha, type SimPoolSpec } from '../../src/drivers/storage/simulated.ts';
import type { PoolSpec } from '../../src/site/model.ts';
import { runScenario, type Scenario, type ScenarioStorage } from './runner.ts';

const HOSTS = [
  { name: 'h1', memMiB: 4096 },
  { name: 'h2', memMiB: 4096 },
];

const POOLS = `  <Pools>
    <Pool name="local" type="file" path="/srv/xen/pool"/>
    <Pool name="vg" type="lvm" vg="vg0" thinpool="thin0"/>
    <Pool name="shared" type="nfs" server="10.77.0.100" export="/export/xen" path="/mnt/xsm/shared"/>
  </Pools>`;
const TEMPLATES = [
  ['onlocal', 'pool="local" image="deb12.img"'],
  ['onqcow', 'pool="local" image="deb12.img" clone="overlay"'],
  ['onlvm', 'pool="vg" image="deb12"'],
  ['onnfs', 'pool="shared" image="deb12.img"'],
]
  .map(
    ([n, d]) =>
      `    <Template name="${n}" type="pvh" maxmem="2048" maxvcpus="4"><Kernel>/srv/xen/kernels/vmlinuz</Kernel><Disk vdev="xvda" ${d}/></Template>`,
  )
  .join('\n');

const local: PoolSpec = { name: 'local', type: 'file', path: '/srv/xen/pool' };
const lvm: PoolSpec = { name: 'vg', type: 'lvm', vg: 'vg0', thinPool: 'thin0' };
const nfs: PoolSpec = {
  name: 'shared',
  type: 'nfs',
  server: '10.77.0.100',
  export: '/export/xen',
  path: '/mnt/xsm/shared',
};

function storage(localMiB = 8192): ScenarioStorage {
  const pools: SimPoolSpec[] = [{ pool: nfs, sizeMiB: 8192, images: [{ name: 'deb12.img', sizeMiB: 1024 }] }];
  for (const host of ['h1', 'h2']) {
    pools.push({ pool: local, host, sizeMiB: localMiB, images: [{ name: 'deb12.img', sizeMiB: 1024 }] });
    pools.push({ pool: lvm, host, sizeMiB: 8192, images: [{ name: 'deb12', sizeMiB: 1024 }] });
  }
  return { extras: { pools: POOLS, templates: TEMPLATES }, store: new SimPoolStore(), pools };
}

const vm = (name: string, host: string, config: string) => ({ name, host, mem: 256, config });
const files = (st: ScenarioStorage, key: string) => st.store.get(key)?.files.map((f) => f.name) ?? [];
const log = (st: ScenarioStorage, key: string) => st.store.get(key)?.log ?? [];

async function run(t: import('ava').ExecutionContext, sc: Scenario) {
  const r = await runScenario(sc);
  t.deepEqual(r.problems, []);
  return r.trace;
}

test.serial('create from a template image into each pool kind: copy, qcow2 overlay, thin snapshot, NFS', async (t) => {
  const st = storage();
  await run(t, {
    name: 'create into each pool kind',
    hosts: HOSTS,
    storage: st,
    steps: [
      {
        submit: [vm('vf', 'h1', 'onlocal'), vm('vq', 'h2', 'onqcow'), vm('vl', 'h1', 'onlvm'), vm('vn', 'h2', 'onnfs')],
        expect: 'stored',
      },
    ],
    ends: 'converged',
  });
  t.true(files(st, 'local@h1').includes('vf-xvda.img'));
  t.true(files(st, 'local@h2').includes('vq-xvda.qcow2'));
  t.true(files(st, 'vg@h1').includes('vl-xvda'));
  t.true(files(st, 'shared').includes('vn-xvda.img'));
  // Each disk is made once, on its own host's pool; nothing lands where the VM does not run.
  t.false(files(st, 'local@h2').includes('vf-xvda.img'));
  t.is(st.store.get('shared')!.files.find((f) => f.name === 'vn-xvda.img')!.sha256, imageSha('shared', 'deb12.img'));
});

test.serial(
  'a create that does not fit its pool is refused before anything runs, naming VM, pool, host, need and free',
  async (t) => {
    const st = storage(2200);
    const trace = await run(t, {
      name: 'free-space refusal',
      hosts: HOSTS,
      storage: st,
      steps: [
        { submit: [vm('a', 'h1', 'onlocal')], expect: 'stored' },
        { submit: [vm('a', 'h1', 'onlocal'), vm('b', 'h1', 'onlocal')], expect: 'refused' },
      ],
      ends: 'converged',
    });
    t.regex(
      trace.submits[1]!.refused ?? '',
      /free-space refusal\.xml:\d+:\d+: VM\[name=b\]: disk xvda needs 1024 MiB in pool local on h1, which has 152 MiB free/,
    );
    t.deepEqual(files(st, 'local@h1').sort(), ['a-xvda.img', 'deb12.img']);
  },
);

test.serial(
  'a move is live on a shared NFS pool; from a local pool it is a cold move that copies the disk',
  async (t) => {
    const st = storage();
    const trace = await run(t, {
      name: 'live vs cold move',
      hosts: HOSTS,
      storage: st,
      steps: [
        { submit: [vm('vn', 'h1', 'onnfs'), vm('vf', 'h1', 'onlocal')], expect: 'stored' },
        // The cold move stops vf: without consent it is refused.
        { submit: [vm('vn', 'h2', 'onnfs'), vm('vf', 'h2', 'onlocal')], expect: 'refused' },
        { submit: [vm('vn', 'h2', 'onnfs'), vm('vf', 'h2', 'onlocal')], consent: true, expect: 'stored' },
      ],
      ends: 'converged',
    });
    t.regex(trace.submits[1]!.refused ?? '', /vf/);
    const plan = trace.plans[2]!;
    t.deepEqual(
      plan.map((a) => [a.id, a.disruptive]),
      [
        ['migrate:vf', true],
        ['migrate:vn', false],
      ].sort(),
    );
    t.deepEqual(log(st, 'local@h2'), ['h1: copy /srv/xen/pool/vf-xvda.img to h2']);
    const sha = (key: string) => st.store.get(key)!.files.find((f) => f.name === 'vf-xvda.img')!.sha256;
    t.is(sha('local@h2'), sha('local@h1'));
    // The NFS disk was not copied: one disk, made once.
    t.deepEqual(log(st, 'shared'), ['h1: provision /mnt/xsm/shared/vn-xvda.img']);
  },
);

for (const [op, when] of [
  ['provision', 'after'],
  ['provision', 'before'],
] as const)
  test.serial(`an agent killed ${when} its disk is made resumes the create without making it twice`, async (t) => {
    const st = storage();
    await run(t, {
      name: `crash ${when} provision`,
      hosts: HOSTS,
      storage: st,
      steps: [{ submit: [vm('vf', 'h1', 'onlocal')], expect: 'stored', crash: { host: 'h1', op, when } }],
      ends: 'converged',
    });
    t.deepEqual(log(st, 'local@h1'), ['h1: provision /srv/xen/pool/vf-xvda.img']);
  });

test.serial('a cold move whose copy fails starts the VM again on its source, and says so', async (t) => {
  const st = storage();
  const trace = await run(t, {
    name: 'failed copy rolls back',
    hosts: HOSTS,
    storage: st,
    steps: [
      { submit: [vm('vf', 'h1', 'onlocal')], expect: 'stored' },
      { submit: [vm('vf', 'h2', 'onlocal')], consent: true, apply: false, expect: 'stored' },
      // Planned with room on h2; by the time it runs, someone else took it.
      { fillPool: 'local@h2', mib: 7000 },
      { applyCurrent: true },
    ],
    ends: 'partially-failed',
  });
  const out = trace.outcome!.actions.find((a) => a.id === 'migrate:vf')!;
  t.is(out.outcome, 'failed');
  t.regex(out.reason ?? '', /rolled back: vf runs again on h1 as before .*No space left on device/);
  const last = trace.states.at(-1)!.hosts;
  t.deepEqual(
    last.h1?.map((d) => [d.name, d.state]),
    [['vf', 'running']],
  );
  t.deepEqual(last.h2, []);
});

test.serial('an agent killed after the cold copy resumes the move without copying again', async (t) => {
  const st = storage();
  await run(t, {
    name: 'crash after copy',
    hosts: HOSTS,
    storage: st,
    steps: [
      { submit: [vm('vf', 'h1', 'onlocal')], expect: 'stored' },
      {
        submit: [vm('vf', 'h2', 'onlocal')],
        consent: true,
        expect: 'stored',
        crash: { host: 'h1', op: 'copy', when: 'after' },
      },
    ],
    ends: 'converged',
  });
  t.deepEqual(log(st, 'local@h2'), ['h1: copy /srv/xen/pool/vf-xvda.img to h2']);
});
