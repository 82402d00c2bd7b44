// The processes of a benchmarked site as it is deployed: the API (`tsx workers/api.ts`, its control worker
// included unless XSM_CONTROL=0) in a process of its own, and host agents hosted many to a process
// (bench/apply.ts --child: simulated Xen hosts with zero-delay timing).
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { freePort } from './private-redis.ts';

const agentsEntry = new URL('./apply.ts', import.meta.url).pathname;

/**
 * Starts the API on a free port with `env` over this process's, and answers once /api/health does.
 * `nodeArgs` go before the entry point (a CPU profile); `nice` runs it at that niceness.
 */
export async function startApiProcess(
  env: Record<string, string>,
  opts: { nodeArgs?: string[]; nice?: number; startS?: number } = {},
): Promise<{ url: string; api: ChildProcess }> {
  const port = await freePort();
  const args = [...(opts.nodeArgs ?? []), '--import', 'tsx', 'workers/api.ts'];
  const api = spawn(
    opts.nice ? 'nice' : process.execPath,
    opts.nice ? ['-n', String(opts.nice), process.execPath, ...args] : args,
    {
      env: { ...process.env, XSM_API_PORT: String(port), XSM_FAILOVER_CHECK_S: '0', XSM_LOG_LEVEL: 'error', ...env },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (
      await fetch(`${url}/api/health`).then(
        (r) => r.ok,
        () => false,
      )
    )
      return { url, api };
    if (i > (opts.startS ?? 30) * 10 || api.exitCode !== null) throw new Error(`the API on ${url} did not start`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `procs` agent processes sharing `hosts` round robin; each has answered once its agents are connected. */
export async function forkAgents(
  prefix: string,
  hosts: string[],
  procs: number,
  extra: { shareConnection?: boolean } = {},
): Promise<ChildProcess[]> {
  const agents: ChildProcess[] = [];
  for (let p = 0; p < procs; p++) {
    const c = fork(agentsEntry, ['--child'], { execArgv: process.execArgv, stdio: 'inherit' });
    agents.push(c);
    await new Promise<void>((resolve, reject) => {
      c.once('message', () => resolve());
      c.once('exit', (code) => reject(new Error(`agent process exited with ${code}`)));
      c.send({ prefix, hosts: hosts.filter((_, i) => i % procs === p), ...extra });
    });
  }
  return agents;
}
