// The host agent's own settings: a bad one is refused by name before the agent touches Redis. The Redis URL
// points at a port nothing listens on, so an agent that tried to connect first would hang in ioredis' retries
// instead of exiting with the refusal.

import test from 'ava';
import { execFile } from 'node:child_process';

/** Runs the agent to its exit; one that hangs (as the old code did, in ioredis' retries) is killed at 30 s. */
function startAgent(env: Record<string, string>): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'workers/host-agent.ts'],
      {
        env: { ...process.env, XSM_HOST: 'h1', XSM_REDIS_URL: 'redis://127.0.0.1:1', ...env },
        timeout: 30_000,
        killSignal: 'SIGKILL',
      },
      (err, _stdout, stderr) => resolve({ status: err ? (typeof err.code === 'number' ? err.code : null) : 0, stderr }),
    );
  });
}

const refusals: [string, Record<string, string>, RegExp][] = [
  [
    'an xl create limit under 10 s',
    { XSM_HYPERVISOR: 'xl', XSM_XL_CREATE_TIMEOUT_S: '5' },
    /XSM_XL_CREATE_TIMEOUT_S=5 is under 10 s/,
  ],
  [
    'an xl create limit that is not a number',
    { XSM_HYPERVISOR: 'xl', XSM_XL_CREATE_TIMEOUT_S: '2m' },
    /XSM_XL_CREATE_TIMEOUT_S=2m is not a whole number/,
  ],
  [
    'a relative config directory',
    { XSM_HYPERVISOR: 'xl', XSM_XEN_CONFIG_DIR: 'etc/xen' },
    /XSM_XEN_CONFIG_DIR=etc\/xen must be an absolute path/,
  ],
  ['an unknown hypervisor', { XSM_HYPERVISOR: 'kvm' }, /XSM_HYPERVISOR=kvm: use xl or sim/],
];

for (const [what, env, message] of refusals) {
  test(`the host agent refuses ${what} before it connects to Redis`, async (t) => {
    const run = await startAgent(env);
    t.is(run.status, 2, run.stderr);
    t.regex(run.stderr, message);
  });
}
