// CLI commands that talk to a running XSM through its HTTP API: apply, status, jobs, vm, job retry,
// site get. Output is for people on a terminal (progress bars) and plain lines when piped.

import { readFile } from 'node:fs/promises';
import type cliProgress from 'cli-progress';
import type { Plan } from '../../site/actions.ts';
import { formatPlan, formatTable } from '../../site/plan-format.ts';
import { ApiCallError, type ApiClient } from '../api-client.ts';
import { defineCommand, EXIT, NO_WAIT, parseDecimal, UsageError, type CliContext, type CliIo } from '../command.ts';
import { JOB_STATES } from '../../jobs/job-states.ts';
import type { JobView, VersionOutcome } from '../../services/inspect.ts';
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

/** Runs `fn` with the API client; an API error propagates to main, which prints it and picks the exit code. */
async function withApi({ api }: CliContext, fn: (api: ApiClient) => Promise<number>): Promise<number> {
  return fn(api());
}

/**
 * Follows a stored version's jobs until its apply ends, then says how it ended. The exit code is 0 only when
 * every action ran. Under --json the progress lines are not printed and the outcome is part of the answer.
 */
export async function followVersion(
  ctx: CliContext,
  api: ApiClient,
  version: number,
): Promise<{ code: number; outcome: VersionOutcome }> {
  let ended: VersionOutcome | undefined;
  await watchJobs(api, ctx.io, {
    filter: (j) => j.version === version,
    settled: async () => (ended = await endedOutcome(api, version)) !== undefined,
    done: async () => false,
    ...(ctx.json ? { tty: false } : {}),
  });
  return { code: reportOutcome(ctx.io, ended!), outcome: ended! };
}

/**
 * The answer for a stored version: with --no-wait the stored version as it is, else its apply followed to
 * the end with the outcome added (the exit code is followVersion's).
 */
export async function answerStored<T extends { version: number }>(
  ctx: CliContext,
  api: ApiClient,
  stored: T,
  noWait: unknown,
): Promise<number> {
  if (noWait) {
    ctx.result(stored);
    return EXIT.ok;
  }
  const { code, outcome } = await followVersion(ctx, api, stored.version);
  ctx.result({ ...stored, outcome });
  return code;
}

/** What a refused consent looks like under --json; the exit code is EXIT.refused. */
function consentRefused(ctx: CliContext): number {
  ctx.result({
    error: {
      code: 'consent-required',
      message: 'nothing was stored: the plan stops running VMs; re-run with --yes to allow it',
    },
  });
  return EXIT.refused;
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
  // cli-progress is loaded only for a terminal: piped and --json runs never draw bars.
  const progress = tty ? (await import('cli-progress')).default : undefined;
  const bars = progress
    ? new progress.MultiBar(
        { format: ' {bar} {percentage}% | {label}', hideCursor: true, clearOnComplete: false, stopOnComplete: false },
        progress.Presets.shades_classic,
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

/** The site file to submit: FILE, or the one a saved plan carries (with its base and hash). */
async function applyInput(
  file: string | undefined,
  options: { plan?: string | undefined; base?: number | undefined; repair: boolean; 'dry-run': boolean },
): Promise<{ file: string; xml: string; saved?: SavedPlan }> {
  if (options.plan === undefined) {
    if (file === undefined) throw new UsageError('give a site file (or --plan PLAN.json)');
    return { file, xml: await readSiteFile(file) };
  }
  if (file !== undefined) throw new UsageError('give a site file or --plan PLAN.json, not both');
  if (options.base !== undefined || options.repair || options['dry-run'])
    throw new UsageError('--plan runs the saved plan as planned: --base, --repair and --dry-run do not apply');
  const saved = parseSavedPlan(await readSiteFile(options.plan), options.plan);
  return { file: saved.file, xml: saved.xml, saved };
}

export const apply = defineCommand({
  name: 'apply',
  summary: 'submit a site file (or a saved plan) as a new version, show its plan and follow its jobs',
  details: [
    'The plan shown is the plan stored with the version and the plan that runs. Actions that stop running',
    'VMs need consent: asked on a terminal, --yes otherwise. Identical content stores nothing ("no changes").',
  ],
  positionals: [{ name: 'FILE', optional: true, description: 'the site file (XML); omit with --plan' }],
  options: {
    base: {
      type: 'integer',
      value: 'N',
      description:
        'the version FILE was edited from (default: the mark `xsm site get` wrote, else the current version)',
    },
    reason: { type: 'string', value: 'TEXT', description: 'why, stored with the version (default: apply FILE)' },
    plan: {
      type: 'string',
      value: 'PLAN.json',
      description: 'run exactly a plan saved by `xsm site plan FILE --out`, or be refused if its base moved',
    },
    'dry-run': { type: 'boolean', description: 'only show the plan; store nothing' },
    'no-wait': { type: 'boolean', description: 'return once stored; do not follow the jobs' },
    yes: { type: 'boolean', short: 'y', description: 'consent to actions that stop running VMs, without asking' },
    repair: { type: 'boolean', description: 'store identical content again so its plan repairs drift' },
  },
  async run({ positionals: { FILE }, options }, ctx) {
    const { io } = ctx;
    const { file, xml, saved } = await applyInput(FILE, options);
    return withApi(ctx, async (api) => {
      const q = `file=${encodeURIComponent(file)}`;
      if (options['dry-run']) {
        const r = await api.call<PlanAnswer>('POST', `/api/site/plan?${q}`, { xml });
        io.out(`plan ${r.planHash.slice(0, 12)} (from version ${r.base}):`);
        io.out(formatPlan(r.plan));
        ctx.result({ dryRun: true, base: r.base, planHash: r.planHash, plan: r.plan });
        return EXIT.ok;
      }
      // The base version: a saved plan's, --base, the mark `xsm site get` left in the file, else the current one.
      const mark = BASE_MARK.exec(xml);
      let base = saved ? saved.base : (options.base ?? (mark ? Number(mark[1]) : undefined));
      if (base === undefined) {
        base = (await api.call<SiteStatus>('GET', '/api/site')).version;
        io.err(
          `based on the current version ${base} (give --base, or edit the output of \`xsm site get\`, to have a concurrent change refused)`,
        );
      }
      const reason = options.reason ?? `apply ${file}`;
      const path = (allow: boolean) =>
        `/api/site?base=${base}&reason=${encodeURIComponent(reason)}&${q}${options.repair ? '&repair=1' : ''}` +
        `${saved ? `&planHash=${saved.planHash}` : ''}${allow ? '&allowDisruption=1' : ''}`;
      let r: SubmitAnswer | undefined;
      try {
        r = await submitWithConsent(io, options.yes, (allow) => api.call<SubmitAnswer>('POST', path(allow), { xml }));
      } catch (e) {
        if (!(e instanceof ApiCallError) || e.code !== 'stale-plan' || !saved) throw e;
        // What moved since the plan was saved, before main prints the refusal itself (exit 4).
        const now = (e.details as { plan?: Plan } | undefined)?.plan;
        if (now)
          io.err(
            [
              'the plan it would get now differs from the saved one:',
              ...planDiff(saved.plan, now).map((l) => `  ${l}`),
            ].join('\n'),
          );
        throw e;
      }
      if (!r) return consentRefused(ctx);
      if (reportUnchanged(io, r) || r.unchanged) {
        ctx.result(unchangedAnswer(r));
        return EXIT.ok;
      }
      for (const w of r.warnings ?? []) io.err(`warning: ${w.text}`);
      io.out(`version ${r.version} stored (based on ${base}); plan ${r.planHash.slice(0, 12)}:`);
      io.out(formatPlan(r.plan));
      return answerStored(
        ctx,
        api,
        { version: r.version, base, planHash: r.planHash, plan: r.plan },
        options['no-wait'],
      );
    });
  },
});

export const status = defineCommand({
  name: 'status',
  summary: 'site version, hosts (heartbeat, memory) and VMs (desired vs observed); exit 1 when out of sync',
  positionals: [],
  options: {},
  async run(_args, ctx) {
    const { io } = ctx;
    return withApi(ctx, async (api) => {
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
      const outOfSync = vms.vms.filter((v) => !v.inSync).map((v) => v.name);
      ctx.result({ site, hosts, ...vms, inSync: outOfSync.length === 0, outOfSync });
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
      if (!outOfSync.length) return EXIT.ok;
      io.err(
        `out of sync: ${outOfSync.join(', ')} (the apply of version ${site.version} may still be running: xsm jobs)`,
      );
      return EXIT.failed;
    });
  },
});

export const jobs = defineCommand({
  name: 'jobs',
  summary: 'list jobs, newest first; --watch follows them with live progress bars until none is running',
  positionals: [],
  options: {
    state: { type: 'string', value: 'S[,S]', description: `only jobs in these states (${JOB_STATES.join(', ')})` },
    queue: { type: 'string', value: 'Q', description: 'only jobs of this queue (control, deploy, host-NAME)' },
    watch: { type: 'boolean', description: 'follow the jobs until none is running' },
  },
  async run({ options: { state, queue, watch } }, ctx) {
    for (const s of state?.split(',') ?? [])
      if (!(JOB_STATES as readonly string[]).includes(s))
        throw new UsageError(`--state: unknown job state "${s}"; use ${JOB_STATES.join(', ')}`);
    const { io } = ctx;
    return withApi(ctx, async (api) => {
      if (watch) {
        const seen = await watchJobs(api, io, {
          filter: (j) => (!queue || j.queue === queue) && (!state || state.split(',').includes(j.state)),
          done: async (js) =>
            !js.some((j) => ['active', 'waiting', 'waiting-children', 'delayed', 'prioritized'].includes(j.state)),
          ...(ctx.json ? { tty: false } : {}),
        });
        const failed = seen.filter((j) => j.state === 'failed');
        ctx.result({ jobs: seen, failed: failed.length });
        if (!failed.length) return EXIT.ok;
        io.err(`${failed.length} job${failed.length === 1 ? '' : 's'} failed; retry one with: xsm job retry QUEUE ID`);
        return EXIT.failed;
      }
      const r = await api.call<{ jobs: JobView[] }>(
        'GET',
        `/api/jobs?limit=200${state ? `&state=${encodeURIComponent(state)}` : ''}${queue ? `&queue=${encodeURIComponent(queue)}` : ''}`,
      );
      for (const j of r.jobs) io.out(jobLine(j));
      ctx.result({ jobs: r.jobs });
      return EXIT.ok;
    });
  },
});

export const jobRetry = defineCommand({
  name: 'job retry',
  summary: 'retry a failed job from the step it failed at',
  positionals: [
    { name: 'QUEUE', description: 'the queue, as `xsm jobs --state failed` prints it' },
    { name: 'ID', description: 'the job id, as `xsm jobs --state failed` prints it' },
  ],
  options: {},
  async run({ positionals: { QUEUE, ID } }, ctx) {
    return withApi(ctx, async (api) => {
      const j = await api.call<JobView>(
        'POST',
        `/api/jobs/${encodeURIComponent(QUEUE)}/${encodeURIComponent(ID)}/retry`,
      );
      ctx.io.out(`job ${j.id} on ${j.queue} queued again`);
      ctx.result({ job: j });
      return EXIT.ok;
    });
  },
});

/**
 * Submits a VM edit (asking for consent when it stops the VM), prints the version and plan it became, and
 * follows its jobs like `apply` unless --no-wait: the exit code says whether the change happened.
 */
async function submitEdit(
  ctx: CliContext,
  req: { method: string; path: string; json?: object },
  options: { reason?: string | undefined; yes: boolean; 'no-wait': boolean },
): Promise<number> {
  return withApi(ctx, async (api) => {
    const r = await submitWithConsent(ctx.io, options.yes, (allow) =>
      api.call<SubmitAnswer>(req.method, req.path, {
        json: {
          ...req.json,
          ...(options.reason !== undefined ? { reason: options.reason } : {}),
          ...(allow ? { allowDisruption: true } : {}),
        },
      }),
    );
    if (!r) return consentRefused(ctx);
    if (reportUnchanged(ctx.io, r) || r.unchanged) {
      ctx.result(unchangedAnswer(r));
      return EXIT.ok;
    }
    ctx.io.out(`version ${r.version}: ${r.reason ?? ''}; plan ${r.planHash.slice(0, 12)}:`);
    ctx.io.out(formatPlan(r.plan));
    return answerStored(ctx, api, { version: r.version, planHash: r.planHash, plan: r.plan }, options['no-wait']);
  });
}

/** `--json` answer for identical content: nothing stored. */
function unchangedAnswer(r: SubmitAnswer): object {
  return r.unchanged ? { unchanged: true, version: r.version, ...(r.drift ? { drift: r.drift } : {}) } : {};
}

export { NO_WAIT } from '../command.ts';

const YES = {
  type: 'boolean',
  short: 'y',
  description: 'consent to stopping the VM if the plan needs it, without asking',
} as const;
const REASON = { type: 'string', value: 'TEXT', description: 'why, stored with the new version' } as const;
const VM = { name: 'VM', description: "the VM's name in the site file" } as const;

export const vmMigrate = defineCommand({
  name: 'vm migrate',
  summary: 'live-migrate a VM (writes a new site version with its new DOM0)',
  positionals: [VM, { name: 'HOST', description: 'the host to move it to' }],
  options: { reason: REASON, yes: YES, 'no-wait': NO_WAIT },
  async run({ positionals: { VM, HOST }, options }, ctx) {
    return submitEdit(
      ctx,
      { method: 'POST', path: `/api/vms/${encodeURIComponent(VM)}/migrate`, json: { to: HOST } },
      options,
    );
  },
});

export const vmSet = defineCommand({
  name: 'vm set',
  summary: "change a VM's memory and/or vCPUs (live where Xen allows; a restart asks for consent)",
  positionals: [VM],
  options: {
    mem: { type: 'integer', value: 'MiB', min: 1, description: 'memory in MiB (decimal)' },
    vcpus: { type: 'integer', value: 'N', min: 1, description: 'number of virtual CPUs' },
    reason: REASON,
    yes: YES,
    'no-wait': NO_WAIT,
  },
  async run({ positionals: { VM }, options }, ctx) {
    if (options.mem === undefined && options.vcpus === undefined) throw new UsageError('give --mem and/or --vcpus');
    const json = {
      ...(options.mem !== undefined ? { memMiB: options.mem } : {}),
      ...(options.vcpus !== undefined ? { vcpus: options.vcpus } : {}),
    };
    return submitEdit(ctx, { method: 'POST', path: `/api/vms/${encodeURIComponent(VM)}/reconfigure`, json }, options);
  },
});

export const vmRemove = defineCommand({
  name: 'vm remove',
  summary: 'destroy a VM and remove it from the site file (asks for consent, or --yes)',
  positionals: [VM],
  options: {
    reason: REASON,
    yes: YES,
    'no-wait': NO_WAIT,
    'delete-disks': {
      type: 'boolean',
      description: "delete the VM's disks in its pools too (by default they are kept, and the plan says where)",
    },
  },
  async run({ positionals: { VM }, options }, ctx) {
    return submitEdit(
      ctx,
      {
        method: 'DELETE',
        path: `/api/vms/${encodeURIComponent(VM)}`,
        ...(options['delete-disks'] ? { json: { deleteDisks: true } } : {}),
      },
      options,
    );
  },
});

export const siteGet = defineCommand({
  name: 'site get',
  summary: 'print a stored site version (default: current), marked with its version for `xsm apply`',
  positionals: [{ name: 'VERSION', optional: true, description: 'the version to print (default: the current one)' }],
  options: {},
  async run({ positionals: { VERSION } }, ctx) {
    const asked = VERSION === undefined ? undefined : parseDecimal(VERSION, 'VERSION', 1);
    return withApi(ctx, async (api) => {
      const v = asked ?? (await api.call<SiteStatus>('GET', '/api/site')).version;
      const stored = await api.call<{ version: number; xml: string }>('GET', `/api/site/versions/${v}`);
      ctx.result({ version: stored.version, xml: stored.xml });
      const body = stored.xml.replace(BASE_MARK, '').replace(/^\s*\n/, '');
      // The mark goes after the XML declaration, which must stay first.
      const decl = /^<\?xml[^>]*\?>\s*/.exec(body);
      ctx.io.out(
        decl
          ? `${decl[0].trimEnd()}\n<!-- xsm:base-version ${stored.version} -->\n${body.slice(decl[0].length)}`
          : `<!-- xsm:base-version ${stored.version} -->\n${body}`,
      );
      return EXIT.ok;
    });
  },
});

export const opsCommands = [apply, status, jobs, jobRetry, vmMigrate, vmSet, vmRemove, siteGet];
