// `xsm recover` (POST /api/admin/recover): rebuilds the desired state after Redis was lost entirely, the XSM
// paper's way. Every host agent keeps the newest applied site version on its disk, with its number and hash
// (src/lib/site-copy.ts); the recovery asks them all for it (src/state/recovery-store.ts: agents answer on
// their next heartbeat), takes the newest version (refusing when copies of it differ, naming the hosts),
// stores it under its own number so history and later versions continue from there, and restores the
// agents' fencing epochs. Observed state needs no restoring: the agents report it every heartbeat, before
// they answer. A site whose hosts run what the version says is marked converged: planning it again plans nothing.
//
// Check, then act, once: everything is checked (store empty, answers in, copies agree, every host of the site
// answered, the version loads) before anything is written, and the write is one atomic step that refuses if
// the store changed meanwhile. A dry run stops after the checks and says what it would restore from where.

import { randomBytes } from 'node:crypto';
import { newestCopy, type HostCopy, type SiteCopy } from '../lib/site-copy.ts';
import type { ServiceRuntime } from '../runtime/service-runtime.ts';
import type { Site } from '../site/model.ts';
import { formatIssue } from '../site/model.ts';
import { loadSite } from '../site/parse.ts';
import { planChanges } from '../site/plan.ts';
import type { CopyAnswer } from '../state/recovery-store.ts';

export interface RecoverRequest {
  author: string;
  /** Check and say what would be restored; store nothing. */
  dryRun: boolean;
  /** How long to wait for the agents' answers (they answer on their next heartbeat). */
  waitMs: number;
  /**
   * The store is not empty but holds only older versions than the agents (Redis came back from an old
   * backup): add the agents' newest version on top. Without it a store that holds any version is refused.
   */
  overOlder?: boolean;
  /** Recover even though some hosts the site names did not answer (they may hold a newer copy). */
  allowMissing?: boolean;
  /** How often the answers are read while waiting (tests make it short). */
  pollMs?: number;
}

export interface RecoveryReport {
  dryRun: boolean;
  /** The version restored (or that would be). */
  version: number;
  sha256: string;
  /** Hosts whose copy is that version. */
  from: string[];
  /** Hosts with an older copy, and its version. */
  older: { host: string; version: number }[];
  /** Hosts that answered without a copy, and why. */
  without: { host: string; problem: string }[];
  /** Hosts the site names that did not answer (only with allowMissing). */
  missing: string[];
  /** The store's version before (0: empty). */
  before: number;
  /** Fencing epochs raised from the agents' answers. */
  epochs: Record<string, number>;
  /** Actions a plan of the version against what the hosts report would take: none for a converged site. */
  drift: string[];
  /** The site was marked converged (nothing to do). */
  converged: boolean;
}

/** A recovery that must not go on: says why and what to do. Nothing was stored. */
export class RecoveryRefusedError extends Error {
  constructor(
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'RecoveryRefusedError';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Hosts the site places anything on or declares. */
function siteHosts(site: Site): string[] {
  return [...new Set([...site.hosts.map((h) => h.name), ...site.vms.map((v) => v.host)])].sort();
}

function parseCopy(copy: SiteCopy): Site {
  const loaded = loadSite(copy.xml, `site v${copy.version}`, { power: false });
  if (!loaded.ok)
    throw new RecoveryRefusedError(
      `the agents' version ${copy.version} does not load: ${loaded.errors.map(formatIssue).join('; ')}; nothing was recovered`,
    );
  return loaded.site;
}

/**
 * Waits for the answers: until every host that reports (or that the newest copy names) has answered, or
 * `waitMs`. Returns the answers and the hosts still silent.
 */
async function collect(
  rt: ServiceRuntime,
  id: string,
  waitMs: number,
  pollMs: number,
): Promise<{ answers: CopyAnswer[]; silent: string[] }> {
  const until = Date.now() + waitMs;
  for (;;) {
    const answers = await rt.recovery.answers(id);
    const answered = new Set(answers.map((a) => a.host));
    const expected = new Set(Object.keys((await rt.observed.all()).hosts));
    const copies = answers.filter((a) => a.copy).map((a) => ({ host: a.host, copy: a.copy! }));
    try {
      const newest = newestCopy(copies);
      if (newest) for (const h of siteHosts(parseCopy(newest.copy))) expected.add(h);
    } catch {
      // Refused after the wait, with every answer in: the hosts that disagree are named then.
    }
    const silent = [...expected].filter((h) => !answered.has(h)).sort();
    if ((answers.length && !silent.length) || Date.now() >= until) return { answers, silent };
    await sleep(pollMs);
  }
}

async function checkStore(rt: ServiceRuntime, overOlder: boolean): Promise<number> {
  const before = await rt.sites.currentVersion();
  if (before && !overOlder)
    throw new RecoveryRefusedError(
      `the site store already holds version ${before}: recover rebuilds a Redis that lost everything, and this one did not; nothing was recovered. If Redis came back from an older backup, add the agents' newer version with --over-older (it refuses unless theirs is newer)`,
      { current: before },
    );
  return before;
}

/** Raises each host's fencing epoch to what its agent holds (a later fence must still come out above it). */
async function restoreEpochs(rt: ServiceRuntime, answers: CopyAnswer[]): Promise<Record<string, number>> {
  const raised: Record<string, number> = {};
  for (const a of answers)
    if (a.epoch && a.epoch > (await rt.fence.epoch(a.host))) {
      await rt.fence.raiseEpoch(a.host, a.epoch);
      raised[a.host] = a.epoch;
    }
  return raised;
}

export async function recoverSite(rt: ServiceRuntime, req: RecoverRequest): Promise<RecoveryReport> {
  const before = await checkStore(rt, req.overOlder ?? false);
  const id = `${Date.now()}-${randomBytes(4).toString('hex')}`;
  await rt.recovery.request(id, req.waitMs + 60_000);
  let answers: CopyAnswer[];
  let silent: string[];
  try {
    ({ answers, silent } = await collect(rt, id, req.waitMs, req.pollMs ?? 200));
  } finally {
    await rt.recovery.end(id);
  }
  if (!answers.length)
    throw new RecoveryRefusedError(
      `no host agent answered within ${req.waitMs} ms: nothing was recovered. Start the agents (they answer on their next heartbeat, pointed at this Redis and prefix) and run recover again`,
    );
  const copies: HostCopy[] = answers.filter((a) => a.copy).map((a) => ({ host: a.host, copy: a.copy! }));
  const without = answers.filter((a) => !a.copy).map((a) => ({ host: a.host, problem: a.problem ?? 'no copy yet' }));
  let newest: ReturnType<typeof newestCopy>;
  try {
    newest = newestCopy(copies);
  } catch (e) {
    throw new RecoveryRefusedError((e as Error).message, {
      copies: copies.map((c) => ({ host: c.host, version: c.copy.version, sha256: c.copy.sha256 })),
    });
  }
  if (!newest)
    throw new RecoveryRefusedError(
      `none of the ${answers.length} agents that answered keeps a site copy (${without.map((w) => `${w.host}: ${w.problem}`).join('; ')}): nothing was recovered. Submit the site file again with \`xsm apply\``,
    );
  const site = parseCopy(newest.copy);
  const missing = siteHosts(site).filter((h) => silent.includes(h));
  if (missing.length && !req.allowMissing)
    throw new RecoveryRefusedError(
      `hosts of version ${newest.copy.version} did not answer: ${missing.join(', ')}; one of them may keep a newer version. Start their agents and run recover again, or recover without them with --allow-missing`,
      { missing },
    );
  if (before >= newest.copy.version)
    throw new RecoveryRefusedError(
      `the site store's version ${before} is not older than the agents' newest, ${newest.copy.version}: nothing to recover`,
      { current: before, agents: newest.copy.version },
    );
  const observed = await rt.observed.all();
  const drift = planChanges(site, site, observed).actions.map((a) => a.id);
  const report: RecoveryReport = {
    dryRun: req.dryRun,
    version: newest.copy.version,
    sha256: newest.copy.sha256,
    from: newest.hosts,
    older: newest.older.map((o) => ({ host: o.host, version: o.copy.version })),
    without,
    missing,
    before,
    epochs: {},
    drift,
    converged: false,
  };
  if (req.dryRun) return report;
  await rt.sites.restore({
    version: newest.copy.version,
    xml: newest.copy.xml,
    author: req.author,
    reason: `recovered from the copies of ${newest.hosts.join(', ')} (sha256 ${newest.copy.sha256.slice(0, 12)})`,
    expectedCurrent: before,
  });
  report.epochs = await restoreEpochs(rt, answers);
  if (!drift.length) {
    await rt.applies.setStatus(newest.copy.version, { state: 'converged', summary: 'recovered: nothing to do' });
    await rt.applies.markConverged(newest.copy.version);
    report.converged = true;
  }
  return report;
}
