// What a rolling upgrade says about itself, from its job's data and journal alone: per host done, skipped,
// running (at which step), failed (at which step, why) or not started, and one plain sentence for people.

import { formatImageRef } from '../deploy/image-ref.ts';
import type { JournalState } from '../lib/steps.ts';
import type { UpgradeJobData } from '../runtime/queues.ts';

export type UpgradeHostState = 'done' | 'skipped' | 'running' | 'failed' | 'not-started';

export interface UpgradeHostView {
  host: string;
  state: UpgradeHostState;
  /** running: the step it is at; failed: the step it failed at. */
  step?: string;
  why?: string;
  /** skipped: why; done: the update's detail and what Xen said. */
  detail?: string;
  /** VMs that did not come back to it, and why. */
  stayed?: { vm: string; why: string }[];
}

export interface UpgradeView {
  id: string;
  image: string;
  /** The job's state: waiting, active (running), completed, failed. */
  state: string;
  hosts: UpgradeHostView[];
  summary: string;
}

function hostView(data: UpgradeJobData, journal: JournalState, host: string): UpgradeHostView {
  const p = data.progress?.[host] ?? {};
  if (p.failed) return { host, state: 'failed', step: p.failed.step, why: p.failed.why };
  if (p.skipped) return { host, state: 'skipped', detail: p.skipped };
  if (journal.done.includes(`${host}:return`))
    return {
      host,
      state: 'done',
      detail: [p.update?.detail, p.verified].filter(Boolean).join('; '),
      ...(p.stayed?.length ? { stayed: p.stayed } : {}),
    };
  const at = journal.current?.startsWith(`${host}:`)
    ? journal.current.slice(host.length + 1)
    : [...journal.done].reverse().find((s) => s.startsWith(`${host}:`));
  return at ? { host, state: 'running', step: at } : { host, state: 'not-started' };
}

const names = (hosts: UpgradeHostView[], s: UpgradeHostState) => hosts.filter((h) => h.state === s).map((h) => h.host);

export function describeUpgrade(data: UpgradeJobData, journal: JournalState, state: string): UpgradeView {
  const hosts = data.hosts.map((h) => hostView(data, journal, h));
  const image = formatImageRef(data.image);
  const parts: string[] = [];
  const done = names(hosts, 'done');
  const skipped = hosts.filter((h) => h.state === 'skipped');
  const notStarted = names(hosts, 'not-started');
  parts.push(`done: ${done.join(', ') || 'none'}`);
  if (skipped.length) parts.push(`skipped: ${skipped.map((h) => `${h.host} (${h.detail})`).join(', ')}`);
  for (const h of hosts.filter((x) => x.state === 'running')) parts.push(`running: ${h.host} at ${h.step}`);
  for (const h of hosts.filter((x) => x.state === 'failed'))
    parts.push(
      `FAILED: ${h.host} at ${h.step}: ${h.why}; ${h.host} stays in maintenance with its VMs elsewhere ` +
        `(fix it, then run xsm hosts upgrade --image ${image} again: hosts on the image are skipped)`,
    );
  if (notStarted.length) parts.push(`not started: ${notStarted.join(', ')}`);
  const head =
    state === 'failed'
      ? `rolling upgrade to ${image} stopped`
      : state === 'completed'
        ? `rolling upgrade to ${image} finished`
        : `rolling upgrade to ${image} ${state === 'active' ? 'running' : state}`;
  return { id: data.id, image, state, hosts, summary: `${head}: ${parts.join('; ')}` };
}
