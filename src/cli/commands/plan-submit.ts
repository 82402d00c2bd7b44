// What the CLI does around a submit: asks for consent when the plan stops running VMs (on a terminal;
// --yes otherwise), says "no changes" when there are none, reads and writes saved plans (`xsm site plan
// FILE --out`, `xsm apply --plan`), and prints how the apply ended: what ran, what failed, what did not
// run and why.

import { createInterface } from 'node:readline/promises';
import type { Action, Plan } from '../../site/actions.ts';
import { formatDisruptions, formatPlan } from '../../site/plan-format.ts';
import { ApiCallError, type ApiClient } from '../api-client.ts';
import { UsageError, type CliIo } from '../command.ts';
import type { VersionOutcome } from '../../services/inspect.ts';

/** An io that can ask the operator a yes/no question (tests answer it; a terminal is asked otherwise). */
export interface PromptingIo extends CliIo {
  confirm?(question: string): Promise<boolean>;
}

/** What `xsm site plan FILE --out plan.json` writes and `xsm apply --plan plan.json` submits. */
export interface SavedPlan {
  format: 'xsm-plan/1';
  /** The site file it was planned from, and its text: what is submitted. */
  file: string;
  xml: string;
  base: number;
  planHash: string;
  /** ISO-8601. */
  observedAt: string;
  xmlHash: string;
  plan: Plan;
}

export interface PlanAnswer {
  plan: Plan;
  planHash: string;
  base: number;
  /** ISO-8601. */
  observedAt: string;
  xmlHash: string;
}

export type SubmitAnswer =
  | (PlanAnswer & { unchanged?: false; version: number; warnings?: { text: string }[]; reason?: string })
  | { unchanged: true; version: number; message: string; drift?: { message: string; plan: Plan } };

export function savedPlan(file: string, xml: string, answer: PlanAnswer): SavedPlan {
  return {
    format: 'xsm-plan/1',
    file,
    xml,
    base: answer.base,
    planHash: answer.planHash,
    observedAt: answer.observedAt,
    xmlHash: answer.xmlHash,
    plan: answer.plan,
  };
}

export function parseSavedPlan(text: string, path: string): SavedPlan {
  let v: Partial<SavedPlan>;
  try {
    v = JSON.parse(text) as Partial<SavedPlan>;
  } catch (e) {
    throw new UsageError(`${path} is not a saved plan (not JSON: ${(e as Error).message})`);
  }
  const ok =
    v?.format === 'xsm-plan/1' &&
    typeof v.xml === 'string' &&
    typeof v.file === 'string' &&
    Number.isSafeInteger(v.base) &&
    typeof v.planHash === 'string' &&
    /^[0-9a-f]{64}$/.test(v.planHash) &&
    Array.isArray(v.plan?.actions);
  if (!ok) throw new UsageError(`${path} is not a saved plan; write one with \`xsm site plan FILE --out ${path}\``);
  return v as SavedPlan;
}

async function terminalConfirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

/** Asks for consent on a terminal (or through the io); false without one: scripts pass --yes. */
async function confirmDisruption(io: PromptingIo, actions: Pick<Action, 'id' | 'disruption'>[]): Promise<boolean> {
  const question = `${formatDisruptions(actions)}\nProceed? [y/N] `;
  if (io.confirm) return io.confirm(question);
  if (!process.stdin.isTTY || !process.stderr.isTTY) return false;
  return terminalConfirm(question);
}

/**
 * Sends a submit; when the API answers consent-required, asks (or, without a terminal, says to re-run
 * with --yes) and sends it again with consent. `send(true)` must carry the consent. Undefined: refused.
 */
export async function submitWithConsent(
  io: PromptingIo,
  yes: boolean,
  send: (allowDisruption: boolean) => Promise<SubmitAnswer>,
): Promise<SubmitAnswer | undefined> {
  try {
    return await send(yes);
  } catch (e) {
    if (!(e instanceof ApiCallError) || e.code !== 'consent-required' || yes) throw e;
    const actions = (e.details as { actions?: Pick<Action, 'id' | 'disruption'>[] } | undefined)?.actions ?? [];
    if (await confirmDisruption(io, actions)) return send(true);
    io.err(formatDisruptions(actions));
    io.err('nothing was stored: these stop running VMs; re-run with --yes to allow it');
    return undefined;
  }
}

/** Prints "no changes" (and any drift with how to repair it); true when there was nothing to store. */
export function reportUnchanged(io: CliIo, r: SubmitAnswer): boolean {
  if (!r.unchanged) return false;
  io.out(`no changes (the content is version ${r.version}'s); nothing was stored`);
  if (r.drift) {
    io.err(`warning: ${r.drift.message}`);
    io.err(formatPlan(r.drift.plan));
  }
  return true;
}

/** What changed between a saved plan and the one the API would run now, one action id a line. */
export function planDiff(saved: Plan, now: Plan): string[] {
  const before = new Map(saved.actions.map((a) => [a.id, JSON.stringify(a)]));
  const after = new Map(now.actions.map((a) => [a.id, JSON.stringify(a)]));
  const lines: string[] = [];
  for (const id of [...new Set([...before.keys(), ...after.keys()])].sort()) {
    if (!after.has(id)) lines.push(`- ${id}`);
    else if (!before.has(id)) lines.push(`+ ${id}`);
    else if (before.get(id) !== after.get(id)) lines.push(`~ ${id}`);
  }
  return lines;
}

/** Prints how an apply ended; the exit code: 0 when every action ran, 1 otherwise. */
export function reportOutcome(io: CliIo, o: VersionOutcome): number {
  if (o.state === 'converged') {
    io.out(`version ${o.version} applied`);
    return 0;
  }
  io.err(o.summary ?? `version ${o.version} is ${o.state}`);
  for (const a of o.actions) {
    if (a.outcome === 'failed')
      io.err(`  ${a.id} failed: ${a.reason ?? 'failed'}  (retry: xsm job retry ${a.queue} ${a.jobId})`);
    if (a.outcome === 'blocked') io.err(`  ${a.id} did not run: ${a.reason ?? `blocked by ${a.blockedBy}`}`);
  }
  return 1;
}

/** The outcome of `version`'s apply once it ended, or undefined while it runs. */
export async function endedOutcome(api: ApiClient, version: number): Promise<VersionOutcome | undefined> {
  const o = await api.call<VersionOutcome>('GET', `/api/site/versions/${version}/outcome`);
  return o.state === 'applying' || o.state === 'not-started' ? undefined : o;
}
