import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirSimStore, provisionSimHost } from '../../src/drivers/hypervisor/simulated.ts';
import { startTestSite } from './harness.ts';
import { siteXml } from './fixtures.ts';
import type { JobProgress } from '../../src/lib/steps.ts';

const agentEntry = new URL('../../workers/host-agent.ts', import.meta.url).pathname;

function startAgentProcess(env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', agentEntry], { env: { ...process.env, ...env }, stdio: 'ignore' });
}

test('kill -9 of a host agent mid-create, then restart: the job resumes at its step and exactly one VM exists', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-crash-'));
  const store = new DirSimStore(dir);
  await provisionSimHost(store, { name: 'h1', totalMemMiB: 2048 + 512, dom0MemMiB: 512, nrCpus: 4 });
  const s = await startTestSite([{ name: 'h1', memMiB: 2048 }], { store, agents: false });
  const env = {
    XSM_HOST: 'h1',
    XSM_HYPERVISOR: 'sim',
    XSM_SIM_DIR: dir,
    XSM_SIM_MEM_MIB: '2560',
    XSM_SIM_CREATE_MS: '50',
    // The domain exists for 2 s before `xl create` returns: the agent dies inside that window.
    XSM_SIM_CREATE_SETTLE_MS: '2000',
    XSM_LOCK_MS: '2000',
    XSM_HEARTBEAT_MS: '500',
    XSM_CACHE_DIR: join(dir, 'cache'),
    XSM_PREFIX: s.rt.config.prefix,
    XSM_LOG_LEVEL: 'error',
  };
  let agent = startAgentProcess(env);
  t.teardown(async () => {
    if (agent.exitCode === null) {
      agent.kill('SIGKILL');
      await new Promise((r) => agent.once('exit', r));
    }
    await s.close();
  });
  const v = await s.submitAndApply(siteXml([{ name: 'h1', memMiB: 2048 }], [{ name: 'vm1', host: 'h1', mem: 512 }]));
  const jobId = `v${v}-create-vm1`;
  const q = s.rt.hostQueue('h1');

  // Wait until the domain exists while the job's journal still says xl-create is running.
  const until = Date.now() + 30000;
  for (;;) {
    const job = await q.getJob(jobId);
    const st = await store.read('h1');
    if (
      job &&
      (job.progress as JobProgress).journal?.current === 'xl-create' &&
      st?.domains.some((d) => d.name === 'vm1')
    )
      break;
    if (Date.now() > until) return t.fail('never saw the agent inside xl-create');
    await new Promise((r) => setTimeout(r, 20));
  }
  agent.kill('SIGKILL');
  await new Promise((r) => agent.once('exit', r));
  t.is(
    await (await q.getJob(jobId))!.getState(),
    'active',
    'the dead agent still holds the job until its lock expires',
  );

  agent = startAgentProcess(env);
  await s.waitConverged(v, 30000);
  const job = (await q.getJob(jobId))!;
  t.is(await job.getState(), 'completed');
  const journal = (job.progress as JobProgress).journal;
  t.deepEqual(journal.done, ['check-plan', 'render-config', 'provision-disks', 'xl-create', 'wait-running', 'verify']);
  t.is(journal.attempts?.['check-plan'], 1, 'the plan was checked once: a resumed job does not check again');
  t.is(journal.attempts?.['xl-create'], 2, 'xl-create was resumed, not skipped');
  t.is(journal.attempts?.['render-config'], 1, 'finished steps were not redone');
  const domains = (await store.read('h1'))!.domains.filter((d) => d.name.startsWith('vm1'));
  t.is(domains.length, 1, 'exactly one VM');
});
