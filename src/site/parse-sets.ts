// Reads the hosts, templates, <Set>s and <VM>s of a site file that passed the text checks (parse.ts). Every
// VM is checked against the hosts and templates declared (or implied by the VMs that name them) and against
// what earlier VMs took: names, MACs, static IPs and host capacity.

import type {
  DiskLayoutSpec,
  HostSpec,
  PlacementHints,
  PoolSpec,
  SetSpec,
  Site,
  SourcePos,
  TemplateSpec,
  VmSpec,
} from './model.ts';
import { addVm, declaredCapacity, emptyLoad, whyNotFits, type HostLoad } from './capacity.ts';
import { readHosts } from './parse-hosts.ts';
import { asArray, attr, MAX_MEM_MIB, MAX_VCPUS, text, type Collector, type XmlNode } from './parse-nodes.ts';
import { readPools } from './parse-pools.ts';
import { readTemplates } from './parse-templates.ts';
import type { PowerPolicy } from './power-policy.ts';
import { configFileTemplate } from './templates.ts';
import { canonicalIp, checkAddress, checkName, checkVmIp, normaliseMac, parseBool, parseInteger } from './validate.ts';
import { childPos, type ElementPos } from './xml-scan.ts';

/** The site a checked <XSMConfig> declares; what is refused is reported to `c`, and refused VMs are left out. */
export function readSite(
  c: Collector,
  root: XmlNode,
  rootPos: ElementPos,
  inventory: HostSpec[] | undefined,
  policy: PowerPolicy | false,
): Site {
  const r = readDeclarations(c, root, rootPos, inventory, policy);
  asArray(root.Set).forEach((setNode, si) => readSet(r, setNode, childPos(rootPos, 'Set', si)));
  return finishSite(r);
}

/** The site once every Set is read: excludeHosts checked against all hosts, implied ones included. */
export function finishSite(r: SiteReading): Site {
  checkExclusions(r);
  return {
    hosts: r.hosts,
    templates: r.templates,
    ...(r.pools.length ? { pools: r.pools } : {}),
    sets: r.sets,
    vms: r.vms,
    ...(r.layouts.length ? { layouts: r.layouts } : {}),
  };
}

/** What reading the Sets shares: the hosts and templates, the Sets and VMs read so far, and what they took. */
export interface SiteReading {
  readonly c: Collector;
  /** <Hosts> or an inventory lists the hosts: a DOM0 outside the list is refused, not an implied host. */
  readonly hostsListed: boolean;
  /** Names of declared hosts/templates that were refused: a VM naming one gets no second, misleading error. */
  readonly refused: ReadonlySet<string>;
  /** Implied hosts and templates are added as VMs name them. */
  readonly hosts: HostSpec[];
  readonly layouts: DiskLayoutSpec[];
  readonly templates: TemplateSpec[];
  readonly pools: PoolSpec[];
  readonly hostByName: Map<string, HostSpec>;
  readonly hostByAddress: Map<string, HostSpec>;
  readonly templateByName: Map<string, TemplateSpec>;
  readonly hostMacs: Map<string, string>;
  readonly sets: SetSpec[];
  readonly vms: VmSpec[];
  readonly vmSeen: Map<string, { name: string; pos: SourcePos | undefined }>;
  /** Where each MAC was first given; null where no place is known (one lookup tells seen from not). */
  readonly macSeen: Map<string, ElementPos | null>;
  readonly ipSeen: Map<string, { vm: string; ip: string }>;
  readonly setSeen: Set<string>;
  readonly loads: Map<string, HostLoad>;
  readonly impliedWarned: Set<string>;
  /** Each VM's excludeHosts, checked once every host (implied ones too) is known. */
  readonly exclusions: { v: VmReading; host: string | undefined; names: string[] }[];
}

/** Reads <Hosts> and <Templates> (or takes the inventory's hosts) and indexes them for the VMs to name. */
export function readDeclarations(
  c: Collector,
  root: XmlNode,
  rootPos: ElementPos,
  inventory: HostSpec[] | undefined,
  policy: PowerPolicy | false,
): SiteReading {
  const hostsDeclared = root.Hosts !== undefined;
  const refused = new Set<string>();
  const { hosts, layouts } = readHosts(c, root, rootPos, refused, policy);
  const hostNames = hostsDeclared
    ? new Set(hosts.map((h) => h.name))
    : inventory && new Set(inventory.map((h) => h.name));
  const pools = readPools(c, root, rootPos, hostNames);
  const templates = readTemplates(c, root, rootPos, refused, new Map(pools.map((p) => [p.name, p])));

  if (!hostsDeclared && inventory) {
    for (const h of inventory) hosts.push({ ...h });
  }
  const hostMacs = new Map<string, string>();
  for (const h of hosts) if (h.bootMac) hostMacs.set(h.bootMac, `host ${h.name}`);
  return {
    c,
    hostsListed: hostsDeclared || Boolean(inventory?.length),
    refused,
    hosts,
    layouts,
    templates,
    pools,
    hostByName: new Map(hosts.map((h) => [h.name, h])),
    hostByAddress: new Map(hosts.map((h) => [canonicalIp(h.address), h])),
    templateByName: new Map(templates.map((t) => [t.name, t])),
    hostMacs,
    sets: [],
    vms: [],
    vmSeen: new Map(),
    macSeen: new Map(),
    ipSeen: new Map(),
    setSeen: new Set(),
    loads: new Map(),
    impliedWarned: new Set(),
    exclusions: [],
  };
}

/** One <Set>: its name and owner, then its VMs in file order. */
function readSet(r: SiteReading, setNode: XmlNode, setPos: ElementPos | undefined): void {
  r.c.unknown(setNode, setPos, `Set[name=${attr(setNode, 'name') ?? '?'}]`, ['name'], ['Owner', 'VM']);
  const set = startSet(r, attr(setNode, 'name'), text(setNode.Owner), setPos);
  asArray(setNode.VM).forEach((vmNode, vi) => {
    const vmPos = childPos(setPos, 'VM', vi);
    r.c.unknown(vmNode, vmPos, vmLabel(attr(vmNode, 'name')), ['name', 'config'], VM_CHILDREN);
    readVm(r, set, vmFields(vmNode), vmPos, (child) => childPos(vmPos, child));
  });
}

/** A Set's name checked and its SetSpec added to the site, for its VMs to join. */
export function startSet(
  r: SiteReading,
  setName: string | undefined,
  owner: string | undefined,
  setPos: ElementPos | undefined,
): SetSpec {
  const { c } = r;
  const setLabel = `Set[name=${setName ?? '?'}]`;
  const nameErr = checkName(setName, 'set name');
  if (nameErr) c.error(setPos, setLabel, nameErr);
  else if (r.setSeen.has(setName!))
    c.error(setPos, setLabel, `set name ${setName} is used twice; give each Set its own name`);
  r.setSeen.add(setName ?? '');
  const set: SetSpec = { name: setName ?? '', vms: [], pos: c.pos(setPos), ...(owner ? { owner } : {}) };
  r.sets.push(set);
  return set;
}

/** The child elements a <VM> may have. */
export const VM_CHILDREN: readonly string[] = ['DOM0', 'VCPUS', 'HWADDR', 'IP', 'MEM', 'Placement'];

/**
 * A <VM>'s values as written (entities decoded, text trimmed as the parser trims it), whichever reader read
 * them: the document (vmFields) or the text in place (parse-sets-fast.ts).
 */
export interface VmFields {
  name: string | undefined;
  config: string | undefined;
  dom0: string | undefined;
  vcpus: string | undefined;
  mem: string | undefined;
  hwaddr: string | undefined;
  ip: string | undefined;
  /** The <Placement> element, as the parser makes it (attributes as `@_name`). */
  placement: XmlNode | undefined;
}

function vmFields(vmNode: XmlNode): VmFields {
  return {
    name: attr(vmNode, 'name'),
    config: attr(vmNode, 'config'),
    dom0: text(vmNode.DOM0),
    vcpus: text(vmNode.VCPUS),
    mem: text(vmNode.MEM),
    hwaddr: text(vmNode.HWADDR),
    ip: text(vmNode.IP),
    placement: vmNode.Placement as XmlNode | undefined,
  };
}

function vmLabel(name: string | undefined): string {
  return `VM[name=${name ?? '?'}]`;
}

/** One <VM> being read: its place, its label in messages, and whether anything about it was refused. */
class VmReading {
  ok = true;
  /** Its place as the VmSpec keeps it (one object for the spec and the name it claims). */
  readonly source: SourcePos | undefined;
  constructor(
    readonly c: Collector,
    readonly pos: ElementPos | undefined,
    readonly label: string,
    private readonly childAt: (child: string) => ElementPos | undefined,
  ) {
    this.source = pos && c.pos(pos);
  }
  /** A child element's place, or the VM's own when the child is absent. */
  at(child: string): ElementPos | undefined {
    return this.childAt(child) ?? this.pos;
  }
  bad(p: ElementPos | undefined, element: string, message: string): void {
    this.c.error(p, element, message);
    this.ok = false;
  }
}

/**
 * One <VM> (its unknown attributes and children already reported): every field checked in file order, then
 * counted on its host; a refused VM stays out of the site. `childAt` finds where a child element is.
 */
export function readVm(
  r: SiteReading,
  set: SetSpec,
  f: VmFields,
  vmPos: ElementPos | undefined,
  childAt: (child: string) => ElementPos | undefined,
): void {
  const { name, config } = f;
  const v = new VmReading(r.c, vmPos, vmLabel(name), childAt);
  const label = v.label;
  claimVmName(r, v, name);

  const cErr = checkName(config, 'config (template name)');
  if (cErr) v.bad(vmPos, `${label}@config`, cErr);

  const vcpus = parseInteger(f.vcpus, 'VCPUS', 1, MAX_VCPUS);
  if (vcpus.error) v.bad(v.at('VCPUS'), `${label}/VCPUS`, vcpus.error);
  const mem = parseInteger(f.mem, 'MEM (MiB)', 16, MAX_MEM_MIB);
  if (mem.error) v.bad(v.at('MEM'), `${label}/MEM`, mem.error);

  const mac = claimVmMac(r, v, f.hwaddr);
  const ip = f.ip?.trim();
  claimVmIp(r, v, ip, name);
  const host = vmHost(r, v, f.dom0?.trim());
  const template = vmTemplate(r, v, config, !cErr);
  checkTemplateLimits(v, template, vcpus.value, mem.value);
  const placement = readPlacement(v, f.placement);
  if (placement.excludeHosts) r.exclusions.push({ v, host: host?.name, names: placement.excludeHosts });

  if (!v.ok || !host || !template || !name) return;
  const vm: VmSpec = {
    name,
    set: set.name,
    config: template.name,
    host: host.name,
    vcpus: vcpus.value!,
    memMiB: mem.value!,
    hwaddr: mac!,
    ip: ip!,
    placement,
    pos: v.source ?? r.c.pos(vmPos),
  };
  addToHost(r, v, set, host, vm);
}

/** Refuses a VM name that is unsafe or already taken by another VM (in any Set). */
function claimVmName(r: SiteReading, v: VmReading, name: string | undefined): void {
  const nErr = checkName(name, 'VM name');
  if (nErr) {
    v.bad(v.pos, v.label, nErr);
    return;
  }
  // Case-blind: Xen domain names, DNS and operators' eyes do not tell vm1 from VM1.
  const key = name!.toLowerCase();
  const first = r.vmSeen.get(key);
  if (first) {
    v.bad(
      v.pos,
      v.label,
      `VM name ${name} is already used${first.name === name ? '' : ` as ${first.name}`} at ${r.c.file}:${first.pos?.line ?? '?'}:${first.pos?.col ?? '?'}; VM names must be unique across all Sets${first.name === name ? '' : ', ignoring case'}`,
    );
  } else r.vmSeen.set(key, { name: name!, pos: v.source });
}

/** The VM's MAC, normalised; refused when another VM or a host's boot MAC already has it. */
function claimVmMac(r: SiteReading, v: VmReading, hwaddr: string | undefined): string | undefined {
  const { label } = v;
  const mac = normaliseMac(hwaddr);
  if (mac.error) {
    v.bad(v.at('HWADDR'), `${label}/HWADDR`, mac.error);
    return undefined;
  }
  const first = r.macSeen.get(mac.value!);
  if (first !== undefined) {
    const at = first;
    v.bad(
      v.at('HWADDR'),
      `${label}/HWADDR`,
      `MAC ${mac.value} is already used at ${r.c.file}:${at?.line ?? '?'}:${at?.col ?? '?'}; every VM needs its own MAC`,
    );
  } else if (r.hostMacs.has(mac.value!)) {
    v.bad(v.at('HWADDR'), `${label}/HWADDR`, `MAC ${mac.value} is the boot MAC of ${r.hostMacs.get(mac.value!)}`);
  } else r.macSeen.set(mac.value!, v.at('HWADDR') ?? null);
  return mac.value;
}

/** Refuses a missing or malformed IP, and a static IP another VM already has. */
function claimVmIp(r: SiteReading, v: VmReading, ip: string | undefined, name: string | undefined): void {
  const ipErr = checkVmIp(ip);
  if (ipErr) v.bad(v.at('IP'), `${v.label}/IP`, ipErr);
  else if (ip !== 'DHCP') {
    const other = r.ipSeen.get(canonicalIp(ip!));
    if (other)
      v.bad(
        v.at('IP'),
        `${v.label}/IP`,
        `static IP ${ip} is already given to VM ${other.vm}${other.ip === ip ? '' : ` (as ${other.ip}, the same address)`}`,
      );
    else r.ipSeen.set(canonicalIp(ip!), { vm: name ?? '?', ip: ip! });
  }
}

/** The host a VM's DOM0 names (a host name or address). Without a host list, each DOM0 implies a host. */
function vmHost(r: SiteReading, v: VmReading, dom0: string | undefined): HostSpec | undefined {
  if (!dom0) {
    v.bad(v.at('DOM0'), `${v.label}/DOM0`, 'DOM0 is missing: name the host (or its address) this VM runs on');
    return undefined;
  }
  const host = r.hostByName.get(dom0) ?? r.hostByAddress.get(canonicalIp(dom0));
  if (host) return host;
  if (r.refused.has(`host:${dom0}`)) v.ok = false;
  else if (r.hostsListed) {
    v.bad(
      v.at('DOM0'),
      `${v.label}/DOM0`,
      `DOM0 ${JSON.stringify(dom0.slice(0, 60))} is no known host; declare it in <Hosts> or use one of: ${[...r.hostByName.keys()].slice(0, 8).join(', ')}`,
    );
  } else return impliedHost(r, v, dom0);
  return undefined;
}

/** The undeclared host a DOM0 names, of unknown capacity: added to the site on first mention, with a warning. */
function impliedHost(r: SiteReading, v: VmReading, dom0: string): HostSpec | undefined {
  const addrErr = checkAddress(dom0, 'DOM0');
  // An undeclared host is named by its DOM0 text, and names become queue names and Redis keys, which
  // cannot hold ':'. An IPv6 DOM0 is named by its canonical address with '-' for ':'.
  const v6 = !addrErr && !dom0.includes('.') && dom0.includes(':');
  const impliedName = v6 ? canonicalIp(dom0).replace(/:/g, '-') : dom0;
  const safe = addrErr ? undefined : checkName(impliedName, 'DOM0');
  if (addrErr || safe) {
    v.bad(v.at('DOM0'), `${v.label}/DOM0`, addrErr ?? safe!);
    return undefined;
  }
  if (r.hostByName.has(impliedName)) return r.hostByName.get(impliedName);
  const host: HostSpec = {
    name: impliedName,
    address: v6 ? canonicalIp(dom0) : dom0,
    cpus: 0,
    memoryMiB: 0,
    maintenance: false,
    implied: true,
    pos: r.c.pos(v.at('DOM0')),
  };
  r.hosts.push(host);
  r.hostByName.set(impliedName, host);
  r.hostByAddress.set(canonicalIp(dom0), host);
  if (!r.impliedWarned.has(impliedName)) {
    r.impliedWarned.add(impliedName);
    r.c.warn(
      v.at('DOM0'),
      `${v.label}/DOM0`,
      `host ${dom0} is not declared in <Hosts>: its capacity is unknown and not checked${v6 ? `; its agent and queue are named ${impliedName}` : ''}`,
    );
  }
  return host;
}

/** The template a VM's config names; a name no <Template> declares names an xl config file on the Dom0. */
function vmTemplate(
  r: SiteReading,
  v: VmReading,
  config: string | undefined,
  configIsSafe: boolean,
): TemplateSpec | undefined {
  let template = config ? r.templateByName.get(config) : undefined;
  if (config && configIsSafe && !template) {
    if (r.refused.has(`template:${config}`)) v.ok = false;
    else {
      template = configFileTemplate(config);
      r.templates.push(template);
      r.templateByName.set(config, template);
      r.c.warn(
        v.pos,
        `${v.label}@config`,
        `${config} is no declared template: the VM runs the xl config file ${config}.cfg from its Dom0's config directory (default /etc/xen), with its own name, MEM, VCPUS, HWADDR and IP; the plan refuses it where the file is missing`,
      );
    }
  }
  return template;
}

/** Refuses VCPUS or MEM above the template's maxvcpus or maxmem. */
function checkTemplateLimits(
  v: VmReading,
  template: TemplateSpec | undefined,
  vcpus: number | undefined,
  memMiB: number | undefined,
): void {
  if (template && vcpus !== undefined && template.maxVcpus !== undefined && vcpus > template.maxVcpus) {
    v.bad(
      v.at('VCPUS'),
      `${v.label}/VCPUS`,
      `VCPUS ${vcpus} exceeds template ${template.name}'s maxvcpus ${template.maxVcpus}`,
    );
  }
  if (template && memMiB !== undefined && template.maxMemMiB !== undefined && memMiB > template.maxMemMiB) {
    v.bad(
      v.at('MEM'),
      `${v.label}/MEM`,
      `MEM ${memMiB} exceeds template ${template.name}'s maxmem ${template.maxMemMiB}`,
    );
  }
}

/**
 * Every host an excludeHosts names must be in the site (by name or address; a typo would silently exclude
 * nothing), and a VM may not run on a host it excludes. Names are stored as host names.
 */
function checkExclusions(r: SiteReading): void {
  for (const { v, host, names } of r.exclusions) {
    const at = v.at('Placement');
    const el = `${v.label}/Placement@excludeHosts`;
    names.forEach((n, i) => {
      const h = r.hostByName.get(n) ?? r.hostByAddress.get(canonicalIp(n));
      if (!h) r.c.error(at, el, `excludeHosts names ${n}, which is not a host of this site`);
      else {
        names[i] = h.name;
        if (h.name === host) r.c.error(at, el, `the VM's DOM0 ${h.name} is among its excludeHosts; move it first`);
      }
    });
  }
}

/** The hints of a VM without <Placement> (most of them): one object, frozen, as VmSpecs only read it. */
const NO_HINTS: PlacementHints = Object.freeze({ pinned: false, noRebalance: false, priority: 0 });

/** The optional <Placement> hints: pinned, rebalance, antiAffinity, affinity, excludeHosts and priority. */
function readPlacement(v: VmReading, pl: XmlNode | undefined): PlacementHints {
  const { label } = v;
  const plPos = pl && v.at('Placement');
  const known = ['pinned', 'antiAffinity', 'affinity', 'excludeHosts', 'rebalance', 'priority'];
  if (pl) v.c.unknown(pl, plPos, `${label}/Placement`, known, []);
  const pinned = parseBool(attr(pl, 'pinned'), 'pinned', false);
  const rebalance = parseBool(attr(pl, 'rebalance'), 'rebalance', true);
  if (pinned.error) v.bad(plPos, `${label}/Placement@pinned`, pinned.error);
  if (rebalance.error) v.bad(plPos, `${label}/Placement@rebalance`, rebalance.error);
  const anti = attr(pl, 'antiAffinity');
  if (anti !== undefined) {
    const e = checkName(anti, 'antiAffinity group');
    if (e) v.bad(plPos, `${label}/Placement@antiAffinity`, e);
  }
  const aff = attr(pl, 'affinity');
  if (aff !== undefined) {
    const e = checkName(aff, 'affinity group');
    if (e) v.bad(plPos, `${label}/Placement@affinity`, e);
  }
  const excluded = readExcludeHosts(v, attr(pl, 'excludeHosts'), plPos);
  const prioText = attr(pl, 'priority');
  const prio = prioText === undefined ? { value: 0 } : parseInteger(prioText, 'priority', 0, 1000);
  if (prio.error) v.bad(plPos, `${label}/Placement@priority`, prio.error);
  if (!pinned.value && rebalance.value && !prio.value && anti === undefined && aff === undefined && !excluded?.length)
    return NO_HINTS;
  return {
    pinned: pinned.value,
    noRebalance: !rebalance.value,
    priority: prio.value ?? 0,
    ...(anti !== undefined ? { antiAffinity: anti } : {}),
    ...(aff !== undefined ? { affinity: aff } : {}),
    ...(excluded?.length ? { excludeHosts: excluded } : {}),
  };
}

/** `excludeHosts="xen03,xen04"`: host names (or addresses), comma-separated, each once. */
function readExcludeHosts(v: VmReading, raw: string | undefined, at: ElementPos | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  const el = `${v.label}/Placement@excludeHosts`;
  const names = raw.split(',').map((n) => n.trim());
  if (names.some((n) => n === '')) {
    v.bad(at, el, `excludeHosts "${raw}" has an empty entry; list host names separated by commas`);
    return undefined;
  }
  for (const n of names) {
    const e = checkAddress(n, 'excluded host') === undefined ? undefined : checkName(n, 'excluded host');
    if (e) v.bad(at, el, e);
  }
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) v.bad(at, el, `excludeHosts names ${dup} twice`);
  return names;
}

/** Counts a checked VM on its host and adds it to its Set, or refuses it when the host cannot hold it. */
function addToHost(r: SiteReading, v: VmReading, set: SetSpec, host: HostSpec, vm: VmSpec): void {
  if (host.maintenance)
    r.c.warn(
      v.at('DOM0'),
      `${v.label}/DOM0`,
      `host ${host.name} is in maintenance; the rebalancer will move ${vm.name} off it`,
    );
  let load = r.loads.get(host.name);
  if (!load) r.loads.set(host.name, (load = emptyLoad()));
  const why = whyNotFits(declaredCapacity(host), load, vm);
  if (why) {
    const short =
      vm.vcpus > host.cpus ? `${vm.vcpus - host.cpus} vCPUs` : `${vm.memMiB - (host.memoryMiB - load.memMiB)} MiB`;
    r.c.error(
      v.pos,
      v.label,
      `does not fit: ${why} (${short} missing); move it to another DOM0 or lower its MEM/VCPUS`,
    );
    return;
  }
  addVm(load, vm);
  set.vms.push(vm.name);
  r.vms.push(vm);
}
