// Issue 20 goal 4: the scale run. One end-to-end apply of a generated site (default 10,000 simulated hosts,
// 100,000 VMs: every VM created from nothing) through the deployed path: the API process with its control
// worker (`tsx workers/api.ts`, as installed), host agents in a few processes (each hosts a share of the
// simulated Xen hosts, every host with its own BullMQ worker and blocking connection, as a Dom0 would), on
// a redis-server of the run's own. It reports the time to converge, Redis's memory and connections before
// and after, and the peak RSS of the API and of the agent processes; then submits the same file again,
// which must store nothing.
//
// The agents' warnings and errors (Redis outages, workers replaced, closes forced) are counted in their
// processes and printed every 30 s and at the end, with their workers' blocking connections by status; a run
// whose hosts change nothing for --stall-s seconds is stopped and reported as not converged.
//
// Run: npx tsx bench/scale-run.ts [--hosts 10000] [--vms 100000] [--procs 4] [--stall-s 300]
// Needs one Redis connection per host and some more: redis-server's maxclients is set to that, and is
// capped by the open-files limit of this shell (`ulimit -n`); the run says so and stops when it is too low.
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { Redis } from 'ioredis';
import { describeOutages, sumOutages, type AgentOutageSnapshot } from './agent-outages.ts';
import { table } from './figures.ts';
import { benchOptions } from './options.ts';
import { privateRedis } from './private-redis.ts';
import { forkAgents, startApiProcess } from './site-processes.ts';
import { generateSite } from './generate.ts';
import { XsmRuntime } from '../src/runtime/runtime.ts';
import { convergedVersion, submitSite } from '../src/services/site-service.ts';
import { throwIfApplyEnded } from './await-converged.ts';
import { redisConfigFromEnv } from '../src/lib/redis.ts';
import { serializeSite } from '../src/site/serialize.ts';

const USAGE = 'usage: npx tsx bench/scale-run.ts [--hosts 10000] [--vms 100000] [--procs 4] [--stall-s 300]';
const { count } = benchOptions(
  {
    hosts: { type: 'string', default: '10000' },
    vms: { type: 'string', default: '100000' },
    procs: { type: 'string', default: '4' },
    'stall-s': { type: 'string', default: '300' },
  },
  USAGE,
);
const HOSTS = count('hosts');
const VMS = count('vms');
const PROCS = count('procs');
const STALL_S = count('stall-s');
const TOKEN = 'bench-scale-admin-token-000001';

/** Peak and current resident set of a process, MiB (Linux /proc). */
function rssMiB(pid: number): { peak: number; now: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { peak: kb('VmHWM') / 1024, now: kb('VmRSS') / 1024 };
}

interface RedisFigures {
  usedMiB: number;
  peakMiB: number;
  clients: number;
  /** Clients blocked in a command (the workers waiting in BZPOPMIN for a job). */
  blocked: number;
  keys: number;
  /** Commands processed since the server started. */
  commands: number;
  /** CPU seconds (user + system) of redis-server since it started: its commands run on one thread. */
  cpuS: number;
}

async function redisFigures(): Promise<RedisFigures> {
  const r = new Redis(redisConfigFromEnv().url);
  try {
    const text = await r.info('all');
    const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(text)?.[1] ?? NaN);
    return {
      usedMiB: field('used_memory') / 2 ** 20,
      peakMiB: field('used_memory_peak') / 2 ** 20,
      clients: field('connected_clients'),
      blocked: field('blocked_clients'),
      keys: await r.dbsize(),
      commands: field('total_commands_processed'),
      cpuS: field('used_cpu_user') + field('used_cpu_sys'),
    };
  } finally {
    r.disconnect();
  }
}

const f0 = (n: number) => Math.round(n).toLocaleString('en-US');
const f1 = (n: number) => n.toLocaleString('en-US', { maximumFractionDigits: 1, minimumFractionDigits: 1 });

async function main(): Promise<void> {
  const limitOk = await (async () => {
    const r = new Redis(redisConfigFromEnv().url);
    const [, max] = (await r.config('GET', 'maxclients')) as [string, string];
    r.disconnect();
    return Number(max);
  })();
  const needed = HOSTS + 200;
  if (limitOk < needed)
    throw new Error(
      `redis-server allows ${limitOk} clients and the run needs about ${needed} (one per host): raise the ` +
        `open-files limit of this shell (ulimit -n ${needed + 64}) or run fewer hosts (--hosts)`,
    );
  const prefix = `xsm-scale-${randomBytes(3).toString('hex')}`;
  const site = generateSite(HOSTS, VMS, 7);
  const xml = serializeSite(site);
  const names = site.hosts.map((h) => h.name);
  const load0 = loadavg()[0]!;

  const { api } = await startApiProcess({ XSM_PREFIX: prefix, XSM_TOKENS: `${TOKEN}:admin:bench` }, { startS: 60 });
  const t0 = Date.now();
  const agents = await forkAgents(prefix, names, PROCS, { shareConnection: true });
  const agentsReadyS = (Date.now() - t0) / 1000;
  // Each agent process's latest report: its outage tally and how many host changes its simulator made.
  const reports = new Map<number, { outages: AgentOutageSnapshot; hostChanges: number }>();
  agents.forEach((c, i) =>
    c.on('message', (m: { outages?: AgentOutageSnapshot; hostChanges?: number }) => {
      if (m.outages) reports.set(i, { outages: m.outages, hostChanges: m.hostChanges ?? 0 });
    }),
  );
  const agentOutages = () => sumOutages([...reports.values()].map((r) => r.outages));
  const hostChanges = () => [...reports.values()].reduce((n, r) => n + r.hostChanges, 0);
  const idle = await redisFigures();
  const rt = new XsmRuntime({ ...redisConfigFromEnv(), prefix });
  try {
    const started = Date.now();
    const { version } = await submitSite(rt, {
      xml,
      file: 'scale.xml',
      base: 0,
      author: 'bench',
      reason: 'scale run',
      consent: 'none',
      apply: true,
    });
    const storedS = (Date.now() - started) / 1000;
    let lastSaid = Date.now();
    // The busiest 10 s of Redis during the apply: commands/s and the share of one core it used.
    let window = { at: Date.now(), figures: await redisFigures() };
    const busiest = { commandsPerS: 0, cpuShare: 0 };
    let fewestClients = window.figures.clients;
    let progress = { changes: hostChanges(), at: Date.now() };
    let stalled = false;
    while ((await convergedVersion(rt)) < version) {
      if (hostChanges() > progress.changes) progress = { changes: hostChanges(), at: Date.now() };
      if (Date.now() - progress.at > STALL_S * 1000) {
        stalled = true;
        break;
      }
      if (Date.now() - window.at >= 10_000) {
        const now = { at: Date.now(), figures: await redisFigures() };
        const s = (now.at - window.at) / 1000;
        busiest.commandsPerS = Math.max(busiest.commandsPerS, (now.figures.commands - window.figures.commands) / s);
        busiest.cpuShare = Math.max(busiest.cpuShare, (now.figures.cpuS - window.figures.cpuS) / s);
        fewestClients = Math.min(fewestClients, now.figures.clients);
        window = now;
      }
      await throwIfApplyEnded(rt, version);
      if (Date.now() - lastSaid > 30_000) {
        const f = window.figures;
        process.stderr.write(
          `  ${Math.round((Date.now() - started) / 1000)} s, not converged yet: ${f0(hostChanges())} host changes; ` +
            `Redis ${f0(f.clients)} clients, ${f0(f.blocked)} blocked; load ${loadavg()[0]!.toFixed(1)}; agents: ` +
            `${describeOutages(agentOutages())}\n`,
        );
        lastSaid = Date.now();
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    const convergeS = (Date.now() - started) / 1000;
    const after = await redisFigures();
    // Submitted again only after a converged apply: it must store nothing.
    const again = stalled
      ? undefined
      : await submitSite(rt, {
          xml,
          file: 'scale.xml',
          base: version,
          author: 'bench',
          reason: 'the same file again',
          consent: 'none',
          apply: true,
        });
    // A fresh report from every agent process (they send one every 5 s otherwise).
    await Promise.race([
      Promise.all(agents.map((c) => (c.send({ report: true }), once(c, 'message')))),
      new Promise((r) => setTimeout(r, 10_000)),
    ]);
    const outages = agentOutages();
    const apiRss = rssMiB(api.pid!);
    const agentRss = agents.map((c) => rssMiB(c.pid!));
    console.log(
      `\nscale run: ${f0(HOSTS)} simulated hosts, ${f0(VMS)} VMs created from nothing; API + control worker in one ` +
        `process, agents in ${PROCS} processes; load average ${load0.toFixed(1)} at the start, ` +
        `${loadavg()[0]!.toFixed(1)} at the end\n`,
    );
    console.log(
      table(
        ['figure', 'value'],
        [
          ['agents started and connected', `${f1(agentsReadyS)} s`],
          ['submit (parse, validate, plan, store)', `${f1(storedS)} s`],
          stalled
            ? [
                'submit to converged',
                `NOT CONVERGED: stopped after ${f1(convergeS)} s, no host changed in the last ${STALL_S} s ` +
                  `(${f0(hostChanges())} host changes in all)`,
              ]
            : ['submit to converged', `${f1(convergeS)} s (${f0(VMS / convergeS)} actions/s)`],
          [
            'same file again',
            !again
              ? 'not submitted'
              : again.unchanged
                ? 'unchanged: nothing stored, nothing run'
                : `STORED v${again.version}`,
          ],
          ['Redis clients, agents idle', f0(idle.clients)],
          [
            'Redis clients during the apply',
            `fewest ${f0(fewestClients)} (10 s samples); at the end ${f0(after.clients)}, ${f0(after.blocked)} blocked`,
          ],
          ['agents: outages and workers', describeOutages(outages)],
          ['Redis memory, agents idle', `${f1(idle.usedMiB)} MiB (${f0(idle.keys)} keys)`],
          [
            'Redis memory, converged',
            `${f1(after.usedMiB)} MiB (${f0(after.keys)} keys), peak ${f1(after.peakMiB)} MiB`,
          ],
          ['Redis memory per VM, converged', `${f1(((after.usedMiB - idle.usedMiB) * 1024) / VMS)} KiB`],
          [
            'Redis commands, submit to converged',
            `${f0(after.commands - idle.commands)} (${f1((after.commands - idle.commands) / VMS)} per VM, ` +
              `${f0((after.commands - idle.commands) / convergeS)}/s on average, ${f0(busiest.commandsPerS)}/s in the busiest 10 s)`,
          ],
          [
            'Redis CPU, submit to converged',
            `${f1(after.cpuS - idle.cpuS)} s (${f0((100 * (after.cpuS - idle.cpuS)) / convergeS)}% of one core on average, ` +
              `${f0(100 * busiest.cpuShare)}% in the busiest 10 s)`,
          ],
          ['API + control RSS', `${f0(apiRss.now)} MiB, peak ${f0(apiRss.peak)} MiB`],
          [
            'agent processes RSS',
            agentRss.map((r) => `${f0(r.peak)}`).join(' / ') +
              ` MiB peak (${f1((agentRss.reduce((a, r) => a + r.peak, 0) * 1024) / HOSTS)} KiB per host)`,
          ],
        ],
      ),
    );
    if (outages.firstLines.length)
      console.log(`\nthe agents' first lines of each kind:\n${outages.firstLines.join('\n')}`);
    if (!again?.unchanged) process.exitCode = 1;
  } finally {
    for (const c of agents) c.send({ stop: true });
    api.kill('SIGINT');
    await Promise.all([...agents, api].map((c) => (c.exitCode !== null ? null : once(c, 'exit'))));
    await rt.close();
  }
}

const stopRedis = await privateRedis(['--maxclients', String(HOSTS + 1000)]);
try {
  await main();
} finally {
  stopRedis();
}
