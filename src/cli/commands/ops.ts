// CLI commands that talk to a running XSM through its HTTP API: apply, status, jobs, vm, job retry,
// site get. Output is for people on a terminal (progress bars) and plain lines when piped.

import { readFile } from 'node:fs/promises';
import cliProgress from 'cli-progress';
import type { Plan } from '../../site/actions.ts';
import { formatPlan, formatTable } from '../../site/plan-format.ts';
import { apiClient, ApiCallError, type ApiClient } from '../api-client.ts';
import { parseArgs, UsageError, type CliIo, type Command } from '../command.ts';
import type { JobView, VersionOutcome } from '../../jobs/inspect.ts';
import {
  endedOutcome,
  parseSavedPlan,
  planDiff,
  reportOutcome,
  reportUnchanged,
  submitWithConsent,
  type PlanAnswer,
  type SavedPlan,
  type SubmitAnswer,
} from './plan-submit.ts';

interface SiteStatus {
  version: number;
  applied: number;
  converged: number;
  author?: string;
  reason?: string;
  time?: number;
}

/** `xsm site get` writes this first line; `xsm apply` reads it back as the base version. */
const BASE_MARK = /<!--\s*xsm:base-version\s+(\d+)\s*-->/;

function apiErrorLines(e: ApiCallError, io: CliIo): void {
  io.err(e.message);
  if (Array.isArray(e.details)) for (const d of e.details as { text?: string }[]) if (d.text) io.err(`  ${d.text}`);
}

async function withApi(io: CliIo, fn: (api: ApiClient) => Promise<number>): Promise<number> {
  try {
    return await fn(apiClient());
  } catch (e) {
    if (e instanceof ApiCallError) {
      apiErrorLines(e, io);
      return 1;
    }
    throw e;
  }
}

const ACTIVE_STATES = 'active,waiting,waiting-children,delayed,prioritized,failed';

function jobLine(j: JobView): string {
  const p = j.progress;
  const step = p?.step ? `${p.workflow ?? ''} ${p.index ?? '?'}/${p.total ?? '?'} ${p.step}` : '';
  const bytes =
    p?.bytes !== undefined
      ? ` ${(p.bytes / 1048576).toFixed(1)} MiB${p.rate ? ` @ ${(p.rate / 1048576).toFixed(1)} MiB/s` : ''}`
      : '';
  const fail = j.failedReason ? ` — ${j.failedReason}` : '';
  return `${j.state.padEnd(8)} ${j.queue.padEnd(14)} ${j.id.padEnd(24)} ${step}${bytes}${fail}`;
}

/**
 * Follows jobs until `done` says so. On a terminal: one progress bar per running job (from the step
 * index and in-step percent the workflows report). Piped: one line each time a job changes step or state.
 */
export async function watchJobs(
  api: ApiClient,
  io: CliIo,
  opts: {
    filter?: (j: JobView) => boolean;
    done: (jobs: JobView[]) => Promise<boolean>;
    /** Checked before each fetch: when true, this round's jobs are shown one last time and the watch ends. */
    settled?: () => Promise<boolean>;
    intervalMs?: number;
    tty?: boolean;
  },
): Promise<JobView[]> {
  const tty = opts.tty ?? Boolean(process.stdout.isTTY);
  const bars = tty
    ? new cliProgress.MultiBar(
        { format: ' {bar} {percentage}% | {label}', hideCursor: true, clearOnComplete: false, stopOnComplete: false },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  const shown = new Map<string, { bar?: cliProgress.SingleBar; last: string }>();
  let jobs: JobView[] = [];
  try {
    for (;;) {
      const settled = (await opts.settled?.()) ?? false;
      jobs = (
        await api.call<{ jobs: JobView[] }>('GET', `/api/jobs?state=${ACTIVE_STATES},completed&limit=1000`)
      ).jobs.filter(opts.filter ?? (() => true));
      for (const j of jobs) {
        const key = `${j.queue}/${j.id}`;
        const line = jobLine(j);
        const p = j.progress;
        const pct =
          j.state === 'completed'
            ? 100
            : p?.index && p.total
              ? Math.min(100, Math.round(((p.index - 1 + (p.percent ?? 0) / 100) / p.total) * 100))
              : 0;
        const seen = shown.get(key);
        if (bars) {
          if (!seen) shown.set(key, { bar: bars.create(100, pct, { label: line }), last: line });
          else seen.bar?.update(pct, { label: line });
        } else if (!seen || seen.last !== line) {
          io.out(line);
          shown.set(key, { last: line });
        }
      }
      if (settled || (await opts.done(jobs))) return jobs;
      await new Promise((r) => setTimeout(r, opts.intervalMs ?? 500));
    }
  } finally {
    bars?.stop();
  }
}

async function readSiteFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}

/** The site file to submit: a file, or the one a saved plan carries (with its base and hash). */
async function applyInput(
  positional: string[],
  flags: Map<string, string | true>,
): Promise<{ file: string; xml: string; saved?: SavedPlan }> {
  const planPath = flags.get('plan');
  if (planPath === undefined) {
    if (positional.length !== 1) throw new UsageError('give exactly one site file (or --plan PLAN.json)');
    return { file: positional[0]!, xml: await readSiteFile(positional[0]!) };
  }
  if (positional.length) throw new UsageError('give a site file or --plan PLAN.json, not both');
  if (flags.has('base') || flags.has('repair') || flags.has('dry-run'))
    throw new UsageError('--plan runs the saved plan as planned: --base, --repair and --dry-run do not apply');
  const saved = parseSavedPlan(await readSiteFile(String(planPath)), String(planPath));
  return { file: saved.file, xml: saved.xml, saved };
}

export const apply: Command = {
  name: 'apply',
  usage:
    'xsm apply FILE [--base N] [--reason TEXT] [--dry-run] [--no-wait] [--yes] [--repair] | xsm apply --plan PLAN.json [--yes] [--no-wait]',
  summary: 'submit a site file (or a saved plan) as a new version, show its plan and follow its jobs until applied',
  async run(args, io) {
    const { positional, flags } = parseArgs(args, ['base', 'reason', 'plan']);
    const { file, xml, saved } = await applyInput(positional, flags);
    return withApi(io, async (api) => {
      const q = `file=${encodeURIComponent(file)}`;
      if (flags.has('dry-run')) {
        const r = await api.call<PlanAnswer>('POST', `/api/site/plan?${q}`, { xml });
        io.out(`plan ${r.planHash.slice(0, 12)} (from version ${r.base}):`);
        io.out(formatPlan(r.plan));
        return 0;
      }
      // The base version: a saved plan's, --base, the mark `xsm site get` left in the file, else the current version.
      const mark = BASE_MARK.exec(xml);
      let base = saved
        ? saved.base
        : flags.has('base')
          ? Number(flags.get('base'))
          : mark
            ? Number(mark[1])
            : undefined;
      if (base === undefined) {
        base = (await api.call<SiteStatus>('GET', '/api/site')).version;
        io.err(
          `based on the current version ${base} (give --base, or edit the output of \`xsm site get\`, to have a concurrent change refused)`,
        );
      }
      if (!Number.isSafeInteger(base) || base < 0) throw new UsageError(`--base must be a version number`);
      const reason = typeof flags.get('reason') === 'string' ? String(flags.get('reason')) : `apply ${file}`;
      const path = (allow: boolean) =>
        `/api/site?base=${base}&reason=${encodeURIComponent(reason)}&${q}${flags.has('repair') ? '&repair=1' : ''}${saved ? `&planHash=${saved.planHash}` : ''}${allow ? '&allowDisruption=1' : ''}`;
      let r: SubmitAnswer | undefined;
      try {
        r = await submitWithConsent(io, flags.has('yes'), (allow) =>
          api.call<SubmitAnswer>('POST', path(allow), { xml }),
        );
      } catch (e) {
        if (!(e instanceof ApiCallError) || e.code !== 'stale-plan' || !saved) throw e;
        io.err(e.message);
        const now = (e.details as { plan?: Plan } | undefined)?.plan;
        if (now) for (const line of planDiff(saved.plan, now)) io.err(`  ${line}`);
        return 1;
      }
      if (!r) return 1;
      if (reportUnchanged(io, r) || r.unchanged) return 0;
      for (const w of r.warnings ?? []) io.err(`warning: ${w.text}`);
      io.out(`version ${r.version} stored (based on ${base}); plan ${r.planHash.slice(0, 12)}:`);
      io.out(formatPlan(r.plan));
      if (flags.has('no-wait')) return 0;
      const version = r.version;
      let ended: VersionOutcome | undefined;
      await watchJobs(api, io, {
        filter: (j) => j.version === version,
        settled: async () => (ended = await endedOutcome(api, version)) !== undefined,
        done: async () => false,
      });
      return reportOutcome(io, ended!);
    });
  },
};

export const status: Command = {
  name: 'status',
  usage: 'xsm status [--json]',
  summary: 'site version, hosts (heartbeat, memory) and VMs (desired vs observed)',
  async run(args, io) {
    const { flags } = parseArgs(args);
    return withApi(io, async (api) => {
      const site = await api.call<SiteStatus>('GET', '/api/site');
      const { hosts } = await api.call<{
        hosts: {
          name: string;
          inSite: boolean;
          heartbeatAgeMs: number | null;
          freeMemMiB?: number;
          totalMemMiB?: number;
          domains?: number;
          maintenance?: boolean;
          health?: string;
          healthDetail?: string;
        }[];
      }>('GET', '/api/hosts');
      const vms = await api.call<{
        vms: {
          name: string;
          desired: { host: string; memMiB: number; vcpus: number };
          observed: { host: string; state: string }[];
          inSync: boolean;
        }[];
        unmanaged: { name: string; observed: { host: string }[] }[];
      }>('GET', '/api/vms');
      if (flags.has('json')) {
        io.out(JSON.stringify({ site, hosts, ...vms }, null, 2));
        return 0;
      }
      io.out(
        `site version ${site.version} (applied ${site.applied}, converged ${site.converged})${site.reason ? ` — ${site.reason} by ${site.author}` : ''}`,
      );
      io.out('');
      io.out(
        formatTable(
          ['HOST', 'HEARTBEAT', 'FREE MiB', 'TOTAL MiB', 'VMS', 'NOTE'],
          hosts.map((h) => [
            h.name,
            h.heartbeatAgeMs === null ? 'never' : `${(h.heartbeatAgeMs / 1000).toFixed(1)} s ago`,
            String(h.freeMemMiB ?? '-'),
            String(h.totalMemMiB ?? '-'),
            String(h.domains ?? '-'),
            [
              h.inSite ? '' : 'not in site file',
              h.maintenance ? 'maintenance' : '',
              h.health && h.health !== 'healthy' ? h.health.toUpperCase() : '',
            ]
              .filter(Boolean)
              .join(', '),
          ]),
        ),
      );
      for (const h of hosts) if (h.healthDetail) io.out(`${h.name}: ${h.healthDetail}`);
      io.out('');
      io.out(
        formatTable(
          ['VM', 'DESIRED', 'MEM', 'VCPUS', 'OBSERVED', 'STATE', 'IN SYNC'],
          vms.vms.map((v) => [
            v.name,
            v.desired.host,
            String(v.desired.memMiB),
            String(v.desired.vcpus),
            v.observed.map((o) => o.host).join(',') || '-',
            v.observed.map((o) => o.state).join(',') || '-',
            v.inSync ? 'yes' : 'NO',
          ]),
        ),
      );
      for (const u of vms.unmanaged)
        io.out(`unmanaged domain ${u.name} on ${u.observed.map((o) => o.host).join(',')} (not in the site file)`);
      return 0;
    });
  },
};

export const jobs: Command = {
  name: 'jobs',
  usage: 'xsm jobs [--state S[,S]] [--queue Q] [--watch]',
  summary: 'list jobs, newest first; --watch follows them with live progress bars until none is running',
  async run(args, io) {
    const { flags } = parseArgs(args, ['state', 'queue']);
    const state = typeof flags.get('state') === 'string' ? String(flags.get('state')) : undefined;
    const queue = typeof flags.get('queue') === 'string' ? String(flags.get('queue')) : undefined;
    return withApi(io, async (api) => {
      if (flags.has('watch')) {
        await watchJobs(api, io, {
          filter: (j) => (!queue || j.queue === queue) && (!state || state.split(',').includes(j.state)),
          done: async (js) =>
            !js.some((j) => ['active', 'waiting', 'waiting-children', 'delayed', 'prioritized'].includes(j.state)),
        });
        return 0;
      }
      const r = await api.call<{ jobs: JobView[] }>(
        'GET',
        `/api/jobs?limit=200${state ? `&state=${encodeURIComponent(state)}` : ''}${queue ? `&queue=${encodeURIComponent(queue)}` : ''}`,
      );
      for (const j of r.jobs) io.out(jobLine(j));
      return 0;
    });
  },
};

export const jobRetry: Command = {
  name: 'job retry',
  usage: 'xsm job retry QUEUE ID',
  summary: 'retry a failed job from the step it failed at',
  async run(args, io) {
    const { positional } = parseArgs(args);
    if (positional.length !== 2)
      throw new UsageError('give the queue and the job id (as `xsm jobs --state failed` prints them)');
    return withApi(io, async (api) => {
      const j = await api.call<JobView>(
        'POST',
        `/api/jobs/${encodeURIComponent(positional[0]!)}/${encodeURIComponent(positional[1]!)}/retry`,
      );
      io.out(`job ${j.id} on ${j.queue} queued again`);
      return 0;
    });
  },
};

function vmCommand(
  name: string,
  usage: string,
  summary: string,
  request: (
    positional: string[],
    flags: Map<string, string | true>,
  ) => { method: string; path: string; json?: unknown },
): Command {
  return {
    name,
    usage,
    summary,
    async run(args, io) {
      const { positional, flags } = parseArgs(args, ['mem', 'vcpus', 'reason']);
      const req = request(positional, flags);
      return withApi(io, async (api) => {
        const r = await submitWithConsent(io, flags.has('yes'), (allow) =>
          api.call<SubmitAnswer>(req.method, req.path, {
            json: {
              ...(req.json as object),
              ...(typeof flags.get('reason') === 'string' ? { reason: flags.get('reason') } : {}),
              ...(allow ? { allowDisruption: true } : {}),
            },
          }),
        );
        if (!r) return 1;
        if (reportUnchanged(io, r) || r.unchanged) return 0;
        io.out(`version ${r.version}: ${r.reason ?? ''}; plan ${r.planHash.slice(0, 12)}:`);
        io.out(formatPlan(r.plan));
        return 0;
      });
    },
  };
}

export const vmMigrate = vmCommand(
  'vm migrate',
  'xsm vm migrate VM HOST [--yes]',
  'live-migrate a VM (writes a new site version with its new DOM0)',
  (p) => {
    if (p.length !== 2) throw new UsageError('give the VM and the target host');
    return { method: 'POST', path: `/api/vms/${encodeURIComponent(p[0]!)}/migrate`, json: { to: p[1] } };
  },
);

export const vmSet = vmCommand(
  'vm set',
  'xsm vm set VM [--mem MiB] [--vcpus N] [--yes]',
  "change a VM's memory and/or vCPUs (live where Xen allows; a restart asks for consent, or --yes)",
  (p, f) => {
    if (p.length !== 1) throw new UsageError('give the VM');
    const json: { memMiB?: number; vcpus?: number } = {};
    if (typeof f.get('mem') === 'string') json.memMiB = Number(f.get('mem'));
    if (typeof f.get('vcpus') === 'string') json.vcpus = Number(f.get('vcpus'));
    if (json.memMiB === undefined && json.vcpus === undefined) throw new UsageError('give --mem and/or --vcpus');
    return { method: 'POST', path: `/api/vms/${encodeURIComponent(p[0]!)}/reconfigure`, json };
  },
);

export const vmRemove = vmCommand(
  'vm remove',
  'xsm vm remove VM [--yes]',
  'destroy a VM and remove it from the site file (asks for consent, or --yes)',
  (p) => {
    if (p.length !== 1) throw new UsageError('give the VM');
    return { method: 'DELETE', path: `/api/vms/${encodeURIComponent(p[0]!)}` };
  },
);

export const siteGet: Command = {
  name: 'site get',
  usage: 'xsm site get [VERSION]',
  summary: 'print a stored site version (default: current), marked with its version for `xsm apply`',
  async run(args, io) {
    const { positional } = parseArgs(args);
    return withApi(io, async (api) => {
      const v = positional[0] ?? String((await api.call<SiteStatus>('GET', '/api/site')).version);
      const stored = await api.call<{ version: number; xml: string }>(
        'GET',
        `/api/site/versions/${encodeURIComponent(v)}`,
      );
      const body = stored.xml.replace(BASE_MARK, '').replace(/^\s*\n/, '');
      // The mark goes after the XML declaration, which must stay first.
      const decl = /^<\?xml[^>]*\?>\s*/.exec(body);
      io.out(
        decl
          ? `${decl[0].trimEnd()}\n<!-- xsm:base-version ${stored.version} -->\n${body.slice(decl[0].length)}`
          : `<!-- xsm:base-version ${stored.version} -->\n${body}`,
      );
      return 0;
    });
  },
};

export const opsCommands: Command[] = [apply, status, jobs, jobRetry, vmMigrate, vmSet, vmRemove, siteGet];
