// `xsm hosts upgrade --image N[:V]`: a rolling Dom0 upgrade, one host at a time (POST /api/hosts/upgrade).
// The plan comes first: the hosts in order and what each one's drain moves where; --dry-run stops there
// (exit 4 when it would be refused). Then the upgrade is followed to its end (GET /api/hosts/upgrade/:id):
// exit 0 when every host is done or skipped, 1 when it stopped at a host, saying where and why.
// `xsm hosts upgrade-status ID` prints where one is.

import { formatTable } from '../../site/plan-format.ts';
import { defineCommand, EXIT, UsageError, type CliContext } from '../command.ts';
import { NO_WAIT } from './ops.ts';
import { submitWithConsent, type SubmitAnswer } from './plan-submit.ts';

interface PlanHost {
  host: string;
  action: 'upgrade' | 'skip';
  installed?: string;
  why?: string;
  moves: { vm: string; to: string; live: boolean }[];
  blockers: { vm: string; why: string }[];
  cold: { vm: string; why: string }[];
}
interface UpgradePlan {
  image: string;
  method: string;
  hosts: PlanHost[];
  needsConsent: boolean;
}
interface UpgradeAnswer {
  dryRun?: boolean;
  id?: string;
  plan: UpgradePlan;
}
interface UpgradeView {
  id: string;
  image: string;
  state: string;
  hosts: { host: string; state: string; step?: string; why?: string; detail?: string }[];
  summary: string;
}

function printPlan(ctx: CliContext, p: UpgradePlan): void {
  ctx.io.out(`rolling upgrade to ${p.image} (${p.method}), one host at a time:`);
  const rows = p.hosts.map((h, i) => [
    String(i + 1),
    h.host,
    h.installed ?? '-',
    h.action === 'skip'
      ? `skip: ${h.why ?? ''}`
      : h.moves.length
        ? h.moves.map((m) => `${m.vm}->${m.to}${m.live ? '' : ' (cold)'}`).join(', ')
        : 'no VMs to move',
  ]);
  ctx.io.out(formatTable(['#', 'HOST', 'INSTALLED', 'DRAIN MOVES'], rows));
  for (const h of p.hosts) for (const b of h.blockers) ctx.io.out(`${h.host}: cannot move ${b.vm}: ${b.why}`);
  for (const h of p.hosts) for (const c of h.cold) ctx.io.out(`${h.host}: cold move ${c.vm}: ${c.why}`);
  ctx.io.out('each host: drain, update, verify Xen, agent rejoins, undrain --return; stops at the first failure');
}

async function follow(ctx: CliContext, id: string): Promise<number> {
  const api = ctx.api();
  const said = new Map<string, string>();
  for (;;) {
    const v = await api.call<UpgradeView>('GET', `/api/hosts/upgrade/${encodeURIComponent(id)}`);
    for (const h of v.hosts) {
      const line = `${h.host}: ${h.state}${h.step ? ` (${h.step})` : ''}${h.why ? `: ${h.why}` : ''}`;
      if (said.get(h.host) !== line && h.state !== 'not-started') ctx.io.err(line);
      said.set(h.host, line);
    }
    if (v.state === 'completed' || v.state === 'failed') {
      ctx.io.out(v.summary);
      ctx.result(v);
      return v.state === 'completed' ? EXIT.ok : EXIT.failed;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

export const hostsUpgrade = defineCommand({
  name: 'hosts upgrade',
  summary: 'rolling Dom0 upgrade, one host at a time: drain, update, verify Xen, rejoin, return its VMs',
  positionals: [],
  options: {
    image: { type: 'string', value: 'NAME[:VERSION]', description: 'the Dom0 image to put on the hosts (required)' },
    hosts: {
      type: 'string',
      value: 'A,B,...',
      description: 'these hosts, in this order (default: every host, in site-file order)',
    },
    'dry-run': { type: 'boolean', description: 'show the plan (hosts in order, what each drain moves); start nothing' },
    yes: { type: 'boolean', short: 'y', description: 'consent to the cold moves the drains need, without asking' },
    'no-wait': NO_WAIT,
  },
  async run({ options }, ctx) {
    if (options.image === undefined) throw new UsageError('give --image NAME[:VERSION]');
    // Loaded here, not at the top: the image catalogue's errors are BullMQ's unrecoverable ones, and every
    // other command would pay for loading BullMQ.
    const { parseImageRef } = await import('../../deploy/image-ref.ts');
    try {
      parseImageRef(options.image, '--image');
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const hosts = options.hosts?.split(',');
    if (hosts?.some((h) => !h.trim())) throw new UsageError('--hosts takes host names separated by commas: a,b,c');
    const body = { image: options.image, ...(hosts ? { hosts: hosts.map((h) => h.trim()) } : {}) };
    const api = ctx.api();
    if (options['dry-run']) {
      const r = await api.call<UpgradeAnswer>('POST', '/api/hosts/upgrade', { json: { ...body, dryRun: true } });
      printPlan(ctx, r.plan);
      const blocked = r.plan.hosts.some((h) => h.blockers.length);
      ctx.io.out(blocked ? 'dry run: this would be refused; nothing started' : 'dry run: nothing started');
      ctx.result(r);
      return blocked ? EXIT.refused : EXIT.ok;
    }
    const r = (await submitWithConsent(
      ctx.io,
      options.yes,
      (allow) =>
        api.call<UpgradeAnswer>('POST', '/api/hosts/upgrade', {
          json: { ...body, ...(allow ? { allowDisruption: true } : {}) },
        }) as Promise<SubmitAnswer & UpgradeAnswer>,
    )) as (SubmitAnswer & UpgradeAnswer) | undefined;
    if (!r) {
      ctx.result({
        error: { code: 'consent-required', message: 'nothing was started; re-run with --yes to allow it' },
      });
      return EXIT.refused;
    }
    printPlan(ctx, r.plan);
    ctx.io.out(`upgrade ${r.id} started; follow it with: xsm hosts upgrade-status ${r.id}`);
    if (options['no-wait']) {
      ctx.result({ id: r.id, plan: r.plan });
      return EXIT.ok;
    }
    return follow(ctx, r.id!);
  },
});

export const hostsUpgradeStatus = defineCommand({
  name: 'hosts upgrade-status',
  summary: 'where a rolling upgrade is: per host done, skipped, running, failed (step, why) or not started',
  positionals: [{ name: 'ID', description: 'the upgrade id `xsm hosts upgrade` printed' }],
  options: { watch: { type: 'boolean', description: 'follow it to its end (exit 0 finished, 1 stopped)' } },
  async run({ positionals: { ID }, options }, ctx) {
    if (options.watch) return follow(ctx, ID);
    const v = await ctx.api().call<UpgradeView>('GET', `/api/hosts/upgrade/${encodeURIComponent(ID)}`);
    ctx.io.out(
      formatTable(
        ['HOST', 'STATE', 'STEP', 'WHY / DETAIL'],
        v.hosts.map((h) => [h.host, h.state, h.step ?? '', h.why ?? h.detail ?? '']),
      ),
    );
    ctx.io.out(v.summary);
    ctx.result(v);
    return v.state === 'failed' ? EXIT.failed : EXIT.ok;
  },
});
