// `xsm host drain HOST` and `xsm host undrain HOST [--return]`: a host in and out of maintenance, its VMs
// moved off and (with --return) back, each a new site version made by POST /api/hosts/:name/drain|undrain.
// The pre-check (what cannot move, and why) is printed first; --dry-run prints it with the plan and stores
// nothing (exit 4 when the drain would be refused).

import { formatPlan, formatTable } from '../../site/plan-format.ts';
import type { Plan } from '../../site/actions.ts';
import { defineCommand, EXIT, type CliContext } from '../command.ts';
import { answerStored, NO_WAIT } from './ops.ts';
import { reportUnchanged, submitWithConsent, type SubmitAnswer } from './plan-submit.ts';

interface HostMove {
  vm: string;
  from: string;
  to: string;
  memMiB: number;
  live: boolean;
}
interface Blocker {
  vm: string;
  why: string;
}
interface DrainAnswer {
  dryRun?: boolean;
  host: string;
  reason: string;
  moves: HostMove[];
  blockers: Blocker[];
  cold: Blocker[];
  plan: Plan;
  planHash: string;
  version?: number;
}

const HOST = { name: 'HOST', description: "the host's name in the site file" } as const;
const COMMON = {
  'dry-run': { type: 'boolean', description: 'show the pre-check and the plan; store nothing' },
  yes: { type: 'boolean', short: 'y', description: 'consent to cold moves (they stop the VM) without asking' },
  reason: { type: 'string', value: 'TEXT', description: 'why, stored with the new version' },
  'no-wait': NO_WAIT,
} as const;

function printCheck(ctx: CliContext, r: DrainAnswer): void {
  const { io } = ctx;
  if (r.moves.length)
    io.out(
      formatTable(
        ['VM', 'FROM', 'TO', 'MEM', 'HOW'],
        r.moves.map((m) => [m.vm, m.from, m.to, `${m.memMiB} MiB`, m.live ? 'live' : 'cold (needs consent)']),
      ),
    );
  else io.out('no VMs to move');
  for (const b of r.blockers) io.out(`cannot move ${b.vm}: ${b.why}`);
  for (const c of r.cold) io.out(`cold move ${c.vm}: ${c.why}`);
}

async function hostChange(
  ctx: CliContext,
  path: string,
  json: object,
  options: { 'dry-run': boolean; yes: boolean; reason?: string | undefined; 'no-wait': boolean },
): Promise<number> {
  const api = ctx.api();
  const body = { ...json, ...(options.reason !== undefined ? { reason: options.reason } : {}) };
  if (options['dry-run']) {
    const r = await api.call<DrainAnswer>('POST', path, { json: { ...body, dryRun: true } });
    printCheck(ctx, r);
    ctx.io.out(formatPlan(r.plan));
    ctx.io.out(r.blockers.length ? 'dry run: this would be refused; nothing stored' : 'dry run: nothing stored');
    ctx.result(r);
    return r.blockers.length ? EXIT.refused : EXIT.ok;
  }
  const r = (await submitWithConsent(ctx.io, options.yes, (allow) =>
    api.call<SubmitAnswer>('POST', path, { json: { ...body, ...(allow ? { allowDisruption: true } : {}) } }),
  )) as (SubmitAnswer & Partial<DrainAnswer>) | undefined;
  if (!r) {
    ctx.result({ error: { code: 'consent-required', message: 'nothing was stored; re-run with --yes to allow it' } });
    return EXIT.refused;
  }
  if (reportUnchanged(ctx.io, r) || r.unchanged) {
    ctx.result({ unchanged: true, version: r.version });
    return EXIT.ok;
  }
  ctx.io.out(`version ${r.version}: ${r.reason ?? ''}`);
  printCheck(ctx, r as DrainAnswer);
  return answerStored(
    ctx,
    api,
    { version: r.version, planHash: r.planHash, moves: r.moves, blockers: r.blockers, cold: r.cold },
    options['no-wait'],
  );
}

export const hostDrain = defineCommand({
  name: 'host drain',
  summary: 'put a host in maintenance and move its VMs off, spread by room and rules (pre-check first)',
  positionals: [HOST],
  options: COMMON,
  async run({ positionals: { HOST }, options }, ctx) {
    return hostChange(ctx, `/api/hosts/${encodeURIComponent(HOST)}/drain`, {}, options);
  },
});

export const hostUndrain = defineCommand({
  name: 'host undrain',
  summary: 'take a host out of maintenance; --return brings back the VMs that left in its drain',
  positionals: [HOST],
  options: {
    ...COMMON,
    return: {
      type: 'boolean',
      description: 'move back the VMs that left in the drain (where they still run as it left them)',
    },
  },
  async run({ positionals: { HOST }, options }, ctx) {
    return hostChange(
      ctx,
      `/api/hosts/${encodeURIComponent(HOST)}/undrain`,
      options.return ? { return: true } : {},
      options,
    );
  },
});
