// `xsm site import`: a site file built from what the host agents see, as a starting point an operator edits
// and applies with no changes planned. Each observed host becomes a <Host> (the current version's own
// entry where it has one: address, power and maintenance are not observable), each running domain a <VM>
// on the host it runs on, at the size Xen holds for it. A VM the current version knows keeps its Set,
// config, MAC, IP and placement; any other domain is matched to the xl config file on its Dom0 that gives
// its name (`name = "web3"` in /etc/xen/web3.cfg or any other file), and its MAC is the one Xen holds. A
// domain that cannot be written as a VM (no config file names it, no MAC) is left out, with a note saying
// what to do. Storage pools are written from what the hosts report of them (type, where they are, and which
// hosts have them): see `importPools`.

import type { HostSpec, PoolSpec, SetSpec, Site, TemplateSpec, VmSpec } from './model.ts';
import type { ObservedHost, ObservedPool, ObservedState } from './observed.ts';
import { heldSize, type DomainInfo } from './domain.ts';
import { configFileTemplate } from './templates.ts';
import { checkName } from './validate.ts';

export interface ImportResult {
  site: Site;
  /** What the operator should know: domains left out and why, guessed values to check. */
  notes: string[];
}

const IMPORTED_SET = 'imported';

/** Builds the site the agents see, keeping what only the current version can know. */
export function siteFromObserved(observed: ObservedState, current: Site | undefined): ImportResult {
  const notes: string[] = [];
  const reports = Object.values(observed.hosts).sort((a, b) => a.name.localeCompare(b.name));
  const currentHosts = new Map((current?.hosts ?? []).map((h) => [h.name, h]));
  const currentVms = new Map((current?.vms ?? []).map((v) => [v.name, v]));
  const declared = new Map((current?.templates ?? []).filter((t) => !t.implied).map((t) => [t.name, t]));
  const hosts = reports.map((r) => importHost(r, currentHosts.get(r.name), notes));
  const observedNames = new Set(hosts.map((h) => h.name));
  // Hosts with no report keep what the current version says of them (and their VMs): nothing is seen there
  // to say otherwise, and leaving them out would plan their VMs' removal.
  for (const h of current?.hosts ?? [])
    if (!observedNames.has(h.name)) {
      hosts.push(h);
      notes.push(`host ${h.name} has no agent report: kept as the current version has it, with its VMs`);
    }
  const vms: VmSpec[] = (current?.vms ?? []).filter((v) => !observedNames.has(v.host));
  const seen = new Set(vms.map((v) => v.name));
  const macs = new Set(vms.map((v) => v.hwaddr));
  const templates = new Map<string, TemplateSpec>(declared);
  for (const v of vms) if (!templates.has(v.config)) templates.set(v.config, configFileTemplate(v.config));
  for (const r of reports) {
    if (r.fencedAt) notes.push(`host ${r.name} was fenced and has not reported since: no VMs imported from it`);
    for (const d of [...r.domains].sort((a, b) => a.name.localeCompare(b.name))) {
      if (seen.has(d.name)) continue;
      const vm = importVm(d, r, currentVms.get(d.name), declared, macs, notes);
      if (!vm) continue;
      seen.add(vm.name);
      macs.add(vm.hwaddr);
      vms.push(vm);
      if (!templates.has(vm.config)) templates.set(vm.config, configFileTemplate(vm.config));
    }
  }
  const sets = importSets(current?.sets ?? [], vms);
  const site: Site = { hosts, templates: [...templates.values()], sets, vms: orderBySets(sets, vms) };
  const pools = importPools(reports, current, notes);
  if (pools.length) site.pools = pools;
  return { site, notes };
}

const LOCATION = ['path', 'vg', 'thinPool', 'server', 'export'] as const;

function location(p: Partial<Pick<PoolSpec, (typeof LOCATION)[number]>>): string {
  return LOCATION.filter((k) => p[k] !== undefined)
    .map((k) => `${k}=${p[k]}`)
    .join(' ');
}

/**
 * The pools the hosts report, as <Pools>: each with its type and location, and the hosts that have it (no
 * `hosts` when every host of the site has it). Where the hosts disagree on a pool's location, the current
 * version's (or else the first host's) is written and a note names the hosts. A host without a report keeps
 * the pools the current version gives it: nothing is seen there to say otherwise.
 */
function importPools(reports: readonly ObservedHost[], current: Site | undefined, notes: string[]): PoolSpec[] {
  const seen = new Map<string, { host: string; pool: ObservedPool }[]>();
  for (const r of reports) {
    if (r.fencedAt) continue;
    for (const pool of r.pools ?? []) seen.set(pool.name, [...(seen.get(pool.name) ?? []), { host: r.name, pool }]);
  }
  const known = new Map((current?.pools ?? []).map((p) => [p.name, p]));
  const reported = new Set(reports.filter((r) => !r.fencedAt).map((r) => r.name));
  const siteHosts = new Set([...reported, ...(current?.hosts ?? []).map((h) => h.name)]);
  // The current version's order first, so an import of an unchanged site writes its pools as they were.
  const names = [...known.keys(), ...[...seen.keys()].filter((n) => !known.has(n)).sort()];
  const pools: PoolSpec[] = [];
  for (const name of names) {
    const had = known.get(name);
    const holders = seen.get(name) ?? [];
    if (!holders.length && !had) continue;
    const first = holders[0]?.pool;
    const fields = had ? location(had) : first ? location(first) : '';
    if (!had && first && !fields) {
      notes.push(`pool ${name} is left out: ${holders[0]!.host}'s agent does not report where it is (upgrade it)`);
      continue;
    }
    const differ = holders.filter((h) => location(h.pool) && location(h.pool) !== fields).map((h) => h.host);
    if (differ.length)
      notes.push(`pool ${name}: ${differ.join(', ')} report it at another place than ${fields}; check those hosts`);
    const type = had?.type ?? first!.type;
    // Hosts without a report keep the current version's word on the pool.
    const unreported = [...siteHosts].filter((h) => !reported.has(h) && (!had || !had.hosts || had.hosts.includes(h)));
    const have = [...new Set([...holders.map((h) => h.host), ...unreported])].sort();
    const every = [...siteHosts].every((h) => have.includes(h));
    if (!have.length) {
      notes.push(`pool ${name}: no host reports it; kept as the current version has it`);
      pools.push(had!);
      continue;
    }
    if (had)
      for (const h of had.hosts ?? [...siteHosts])
        if (reported.has(h) && !have.includes(h))
          notes.push(`pool ${name} is not reported by ${h}, which the current version lists: left off its hosts`);
    const src = had ?? first!;
    const spec: PoolSpec = { name, type };
    for (const k of LOCATION) if (src[k] !== undefined) spec[k] = src[k];
    // Every host has it: no `hosts`, unless the current version spelt them out (an import of it stays the same).
    if (!every || had?.hosts) spec.hosts = have;
    pools.push(spec);
  }
  return pools;
}

function importHost(r: ObservedHost, known: HostSpec | undefined, notes: string[]): HostSpec {
  if (known) return known;
  const guestMiB = r.freeMemMiB + r.domains.reduce((sum, d) => sum + d.memMiB, 0);
  notes.push(
    `host ${r.name} is new: its address is set to its name and its memory to ${guestMiB} MiB (what guests hold and may take); check both`,
  );
  return { name: r.name, address: r.name, cpus: r.nrCpus, memoryMiB: guestMiB, maintenance: false, implied: false };
}

function importVm(
  d: DomainInfo,
  r: ObservedHost,
  known: VmSpec | undefined,
  declared: ReadonlyMap<string, TemplateSpec>,
  macs: ReadonlySet<string>,
  notes: string[],
): VmSpec | undefined {
  const { memMiB, vcpus } = heldSize(d);
  if (known) return { ...known, host: r.name, memMiB, vcpus };
  const skip = (why: string) => {
    notes.push(`domain ${d.name} on ${r.name} is left out: ${why}`);
    return undefined;
  };
  if (checkName(d.name, 'VM name')) return skip('its name is not one a site file allows');
  const file =
    r.configFiles?.find((f) => f.domain === d.name) ?? r.configFiles?.find((f) => f.name === `${d.name}.cfg`);
  if (!file)
    return skip(
      `no config file in ${r.configDir ?? "its Dom0's config directory"} gives its name; write one (\`xl list -l ${d.name}\` shows its config) and import again`,
    );
  const config = file.name.replace(/\.cfg$/, '');
  if (declared.has(config))
    return skip(`its config file ${file.name} has the name of the declared template ${config}; rename the file`);
  const nic = d.nics?.[0];
  if (!nic) return skip('Xen shows no network interface for it, and a VM needs its HWADDR');
  const hwaddr = nic.mac.toLowerCase();
  if (macs.has(hwaddr)) return skip(`its MAC ${hwaddr} is already another VM's`);
  return {
    name: d.name,
    set: IMPORTED_SET,
    config,
    host: r.name,
    vcpus,
    memMiB,
    hwaddr,
    ip: nic.ip && !nic.ip.includes(' ') ? nic.ip : 'DHCP',
    placement: { pinned: false, noRebalance: false, priority: 0 },
  };
}

/** The current Sets with the VMs that remain, then the `imported` Set for new ones (joined if it exists). */
function importSets(current: readonly SetSpec[], vms: VmSpec[]): SetSpec[] {
  const bySet = new Map<string, string[]>();
  for (const v of vms) bySet.set(v.set, [...(bySet.get(v.set) ?? []), v.name]);
  const sets: SetSpec[] = [];
  for (const s of current) {
    const now = bySet.get(s.name) ?? [];
    const kept = s.vms.filter((n) => now.includes(n));
    const added = now.filter((n) => !kept.includes(n));
    if (kept.length || added.length) sets.push({ ...s, vms: [...kept, ...added] });
  }
  const fresh = bySet.get(IMPORTED_SET);
  if (fresh && !current.some((s) => s.name === IMPORTED_SET)) sets.push({ name: IMPORTED_SET, vms: fresh });
  return sets;
}

function orderBySets(sets: readonly SetSpec[], vms: readonly VmSpec[]): VmSpec[] {
  const byName = new Map(vms.map((v) => [v.name, v]));
  return sets.flatMap((s) => s.vms.map((n) => byName.get(n)!));
}
