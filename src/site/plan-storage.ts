// The planner's storage part: which disks a create makes, which moves must be cold because the target cannot
// see the VM's disks (stop, copy with a checksum, start there), and whether every pool has room for what the
// plan puts in it, checked against what each host's agent reports, before anything runs.

import type { Action, MigrateAction, PreviousVm } from './actions.ts';
import { formatIssue, type Site, type VmSpec } from './model.ts';
import type { ObservedState } from './observed.ts';
import { PlanError, type Pending, type Present } from './plan-types.ts';
import { poolKey, poolOnHost, vmDisks, whyNotLive, type VmDisk } from './storage.ts';

/** What a disk takes when made from its image (an overlay or thin snapshot: its metadata). */
const SNAPSHOT_MIB = 1;

const fileName = (path: string) => path.slice(path.lastIndexOf('/') + 1);
/** A list from a report (an empty list that went through Redis's cjson comes back as `{}`). */
const listOf = <T>(x: readonly T[] | undefined): readonly T[] => (Array.isArray(x) ? x : []);

/** The disks a create of `vm` makes (undefined when its template has none in a pool). */
export function disksToMake(site: Site, vm: VmSpec): { disks?: VmDisk[] } {
  const disks = vmDisks(site, vm);
  return disks.length ? { disks } : {};
}

/** The disks a create makes, in the words of the plan's reason (empty when none). */
export function disksReason(disks: readonly VmDisk[] | undefined): string {
  if (!disks?.length) return '';
  const what = disks.map(
    (d) =>
      `${d.vdev} ${d.clone === 'copy' ? 'copied' : `as a ${d.clone === 'overlay' ? 'qcow2 overlay' : 'thin snapshot'}`} from ${d.image} into pool ${d.pool.name} (${d.path})`,
  );
  return `; disk ${what.join(', ')}`;
}

/**
 * A move between hosts that do not share the VM's disks: a cold move that copies them. Undefined when the
 * move can be live (every disk on an NFS pool both mount, or in no pool).
 */
export function coldDiskMove(
  site: Site,
  name: string,
  now: Present,
  want: VmSpec,
  previous: PreviousVm,
): Pending | undefined {
  const why = whyNotLive(site, want, now.host, want.host);
  if (!why.length) return undefined;
  const disks = vmDisks(site, want);
  const paths = disks.map((d) => d.path).join(', ');
  const a: MigrateAction = {
    kind: 'migrate',
    id: `migrate:${name}`,
    vm: name,
    reason: `DOM0 of ${name} changed from ${now.host} to ${want.host}; cold move with a disk copy (DOWNTIME): ${why.join('; ')}`,
    wave: 0,
    dependsOn: [],
    preconditions: [],
    from: now.host,
    to: want.host,
    spec: { ...want, memMiB: now.memMiB, vcpus: now.vcpus },
    mode: 'cold',
    previous,
    disks,
    disruptive: true,
    disruption: `${name} is stopped on ${now.host}, its disks (${paths}) are copied to ${want.host} and checked by sha256, then it starts on ${want.host} (on ${now.host} again if the copy fails); the copy on ${now.host} is kept`,
  };
  return {
    action: a,
    needHost: want.host,
    needMiB: now.memMiB,
    vcpus: now.vcpus,
    freeHost: now.host,
    freeMiB: now.memMiB,
  };
}

/** Where a removal leaves the VM's disks, for the plan to say. */
export function removalDisks(site: Site | undefined, vm: VmSpec | undefined, host: string): { disks?: VmDisk[] } {
  if (!site || !vm) return {};
  const disks = vmDisks(site, { ...vm, host });
  return disks.length ? { disks } : {};
}

function locate(site: Site, vm: string, message: string): PlanError {
  const spec = site.vms.find((v) => v.name === vm);
  const pos = spec?.pos;
  const text = pos
    ? formatIssue({ file: pos.file, line: pos.line, col: pos.col, element: `VM[name=${vm}]`, message })
    : `VM[name=${vm}]: ${message}`;
  return new PlanError(text);
}

/**
 * Checks, before anything runs, that every disk the plan makes or copies has its pool on the host and room in
 * it (per host for file and LVM pools, once for an NFS pool), as the hosts' agents last reported.
 * Unknown space (no report yet) is a note, not a refusal.
 */
export function checkDiskSpace(
  site: Site,
  actions: readonly Action[],
  observed: ObservedState | undefined,
  notes: string[],
) {
  const needs = new Map<string, number>();
  const unknown = new Set<string>();
  for (const a of actions) {
    const host = a.kind === 'create' ? a.host : a.kind === 'migrate' && a.mode === 'cold' ? a.to : undefined;
    const disks = a.kind === 'create' || a.kind === 'migrate' ? (a.disks ?? []) : [];
    if (!host) continue;
    for (const d of disks) {
      if (!poolOnHost(d.pool, host))
        throw locate(
          site,
          a.vm,
          `disk ${d.vdev} is in pool ${d.pool.name}, which ${host} does not have (it is on ${d.pool.hosts?.join(', ')}); place the VM on one of those hosts or add ${host} to the pool's hosts`,
        );
      const report = observed?.hosts[host];
      // No report, or one made before the site declared pools (the agent reports the pools of the current version).
      if (!report || report.pools === undefined) {
        unknown.add(`${d.pool.name} on ${host}`);
        continue;
      }
      const pool = listOf(report.pools).find((p) => p.name === d.pool.name);
      if (!pool)
        throw locate(
          site,
          a.vm,
          `host ${host} does not report pool ${d.pool.name} (it reports ${
            listOf(report.pools)
              .map((p) => p.name)
              .join(', ') || 'no pools'
          }); check the pool on ${host} (${d.pool.type === 'lvm' ? `vgs ${d.pool.vg}` : d.pool.type === 'nfs' ? `mount -t nfs ${d.pool.server}:${d.pool.export} ${d.pool.path}` : `ls ${d.pool.path}`})`,
        );
      const need = diskNeed(site, a, d, host, listOf(pool.images), observed);
      const key = poolKey(d.pool, host);
      const total = (needs.get(key) ?? 0) + need;
      needs.set(key, total);
      if (total > pool.freeMiB)
        throw locate(
          site,
          a.vm,
          `disk ${d.vdev} needs ${need} MiB in pool ${d.pool.name} on ${host}${total > need ? ` (${total} MiB with the plan's other disks there)` : ''}, which has ${pool.freeMiB} MiB free; free space in the pool or place the VM elsewhere`,
        );
    }
  }
  if (unknown.size)
    notes.push(
      `free space of pool ${[...unknown].sort().join(', ')} is unknown (no agent report yet); the plan does not check it there`,
    );
}

/** MiB one disk takes on `host`: nothing when it is already there, else its image's size (or a snapshot's). */
function diskNeed(
  site: Site,
  a: Action,
  d: VmDisk,
  host: string,
  images: readonly { name: string; sizeMiB: number }[],
  observed: ObservedState | undefined,
): number {
  if (images.some((i) => i.name === fileName(d.path))) return 0;
  if (a.kind === 'migrate') {
    const src = listOf(observed?.hosts[a.from]?.pools).find((p) => p.name === d.pool.name);
    const size = listOf(src?.images).find((i) => i.name === fileName(d.path))?.sizeMiB;
    if (size !== undefined) return size;
  }
  if (d.clone !== 'copy') return SNAPSHOT_MIB;
  const image = images.find((i) => i.name === d.image);
  if (!image)
    throw locate(site, a.vm, `base image ${d.image} is not in pool ${d.pool.name} on ${host}; put it there first`);
  return image.sizeMiB;
}
