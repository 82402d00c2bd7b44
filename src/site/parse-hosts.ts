// Reads a site file's <Hosts>: each Host's name, address, boot MAC, capacity and <Power>, each checked, and
// unique across the Hosts. A refused Host is remembered so that VMs naming it get no second error.

import type { DiskLayoutSpec, HostSpec, PowerSpec } from './model.ts';
import { layoutNames, readLayouts } from './parse-layouts.ts';
import { asArray, attr, MAX_MEM_MIB, type Collector, type XmlNode } from './parse-nodes.ts';
import { checkPasswordFilePath, checkPowerAddress, type PowerPolicy } from './power-policy.ts';
import { canonicalIp, checkAddress, checkName, checkPath, normaliseMac, parseBool, parseInteger } from './validate.ts';
import { childPos, type ElementPos } from './xml-scan.ts';

/** What earlier Hosts took, each mapped to that host's name: lower-cased names, canonical addresses, boot MACs. */
interface TakenByHosts {
  names: Map<string, string>;
  addresses: Map<string, string>;
  macs: Map<string, string>;
}

export function readHosts(
  c: Collector,
  root: XmlNode,
  rootPos: ElementPos,
  refused: Set<string>,
  policy: PowerPolicy | false,
): { hosts: HostSpec[]; layouts: DiskLayoutSpec[] } {
  const hosts: HostSpec[] = [];
  if (root.Hosts === undefined) return { hosts, layouts: [] };
  const hostsPos = childPos(rootPos, 'Hosts');
  const hostsNode = (root.Hosts && typeof root.Hosts === 'object' ? root.Hosts : {}) as XmlNode;
  c.unknown(hostsNode, hostsPos, 'Hosts', ['layout'], ['Host', 'Layout']);
  const layouts = readLayouts(c, hostsNode, hostsPos);
  const names = layoutNames(hostsNode);
  const classLayout = attr(hostsNode, 'layout');
  if (classLayout !== undefined && !names.has(classLayout))
    c.error(hostsPos, 'Hosts@layout', unknownLayout(classLayout, names));
  const taken: TakenByHosts = { names: new Map(), addresses: new Map(), macs: new Map() };
  asArray(hostsNode.Host).forEach((node, i) => {
    const at = childPos(hostsPos, 'Host', i);
    const host = readHost(c, node, at, taken, refused, policy);
    const own = attr(node, 'layout');
    if (own !== undefined && !names.has(own)) {
      c.error(at, `Host[name=${attr(node, 'name') ?? '?'}]@layout`, unknownLayout(own, names));
      return;
    }
    const layout = own ?? classLayout;
    if (host) hosts.push(layout !== undefined ? { ...host, layout } : host);
  });
  return { hosts, layouts };
}

function unknownLayout(name: string, names: ReadonlySet<string>): string {
  return `layout ${JSON.stringify(name.slice(0, 60))} is not declared; ${names.size ? `declared: ${[...names].join(', ')}` : 'declare it as <Layout name=".."> in <Hosts>'}`;
}

/** One <Host>, or undefined when anything in it is refused (its name and address then go into `refused`). */
function readHost(
  c: Collector,
  node: XmlNode,
  p: ElementPos | undefined,
  taken: TakenByHosts,
  refused: Set<string>,
  policy: PowerPolicy | false,
): HostSpec | undefined {
  const name = attr(node, 'name');
  const label = `Host[name=${name ?? '?'}]`;
  c.unknown(node, p, label, ['name', 'address', 'mac', 'cpus', 'memory', 'maintenance', 'layout'], ['Power']);
  let ok = true;
  const bad = (el: string, msg: string, at = p) => {
    c.error(at, el, msg);
    ok = false;
  };
  const nErr = checkName(name, 'host name');
  if (nErr) bad(label, nErr);
  else if (taken.names.has(name!.toLowerCase()))
    bad(
      label,
      `host name ${name} is declared twice${taken.names.get(name!.toLowerCase()) === name ? '' : ' (names ignore case, as DNS does)'}; give each Host its own name`,
    );
  const address = attr(node, 'address')?.trim();
  const aErr = checkAddress(address, 'address');
  if (aErr) bad(`${label}@address`, aErr);
  else if (taken.addresses.has(canonicalIp(address!)))
    bad(
      `${label}@address`,
      `address ${address} is also host ${taken.addresses.get(canonicalIp(address!))}'s; each Host needs its own address`,
    );
  const bootMac = readBootMac(attr(node, 'mac'), label, taken.macs, bad);
  const cpus = parseInteger(attr(node, 'cpus'), 'cpus', 1, 4096);
  if (cpus.error) bad(`${label}@cpus`, cpus.error);
  const memory = parseInteger(attr(node, 'memory'), 'memory (MiB)', 64, MAX_MEM_MIB);
  if (memory.error) bad(`${label}@memory`, memory.error);
  const maint = parseBool(attr(node, 'maintenance'), 'maintenance', false);
  if (maint.error) bad(`${label}@maintenance`, maint.error);
  let power: PowerSpec | undefined;
  const pw = node.Power as XmlNode | undefined;
  if (pw !== undefined) {
    const pp = childPos(p, 'Power');
    c.unknown(pw, pp, `${label}/Power`, ['driver', 'address', 'user', 'passwordFile', 'insecureTls'], []);
    const r = readPower(pw, pp, `${label}/Power`, policy);
    for (const [el, msg, at] of r.errors) bad(el, msg, at);
    power = r.power;
  }
  if (name) taken.names.set(name.toLowerCase(), name);
  if (address && name) taken.addresses.set(canonicalIp(address), name);
  if (bootMac && name) taken.macs.set(bootMac, name);
  if (!ok) {
    if (name) refused.add(`host:${name}`);
    if (address) refused.add(`host:${address}`);
    return undefined;
  }
  return {
    name: name!,
    address: address!,
    cpus: cpus.value!,
    memoryMiB: memory.value!,
    maintenance: maint.value,
    implied: false,
    pos: c.pos(p),
    ...(bootMac ? { bootMac } : {}),
    ...(power ? { power } : {}),
  };
}

/** A Host's optional boot MAC, normalised; undefined when not given or refused (here, or by an earlier Host). */
function readBootMac(
  macText: string | undefined,
  label: string,
  macs: Map<string, string>,
  bad: (element: string, message: string) => void,
): string | undefined {
  if (macText === undefined) return undefined;
  const m = normaliseMac(macText);
  if (m.error) bad(`${label}@mac`, m.error);
  else if (macs.has(m.value!))
    bad(`${label}@mac`, `boot MAC ${m.value} is also host ${macs.get(m.value!)}'s; each Host needs its own boot MAC`);
  else return m.value;
  return undefined;
}

/** A host's <Power>: the driver, its BMC address checked for that driver, and where the secret may live. */
function readPower(
  pw: XmlNode,
  pp: ElementPos | undefined,
  label: string,
  policy: PowerPolicy | false,
): { power?: PowerSpec; errors: [string, string, ElementPos | undefined][] } {
  const errors: [string, string, ElementPos | undefined][] = [];
  const bad = (el: string, msg: string) => errors.push([el, msg, pp]);
  const driver = attr(pw, 'driver');
  if (driver !== 'ipmi' && driver !== 'redfish' && driver !== 'qmp' && driver !== 'manual') {
    bad(`${label}@driver`, `power driver ${JSON.stringify(driver ?? '')} is not one of ipmi, redfish, qmp, manual`);
    return { errors };
  }
  const address = attr(pw, 'address');
  if (driver !== 'manual' && !address) bad(`${label}@address`, `power driver ${driver} needs an address`);
  else if (address && policy) {
    const e = checkPowerAddress(driver, address, policy);
    if (e) bad(`${label}@address`, e);
  }
  const pwFile = attr(pw, 'passwordFile');
  if (pwFile !== undefined) {
    const e = policy ? checkPasswordFilePath(pwFile, policy) : checkPath(pwFile, 'passwordFile');
    if (e) bad(`${label}@passwordFile`, e);
  }
  const insecure = parseBool(attr(pw, 'insecureTls'), 'insecureTls', false);
  if (insecure.error) bad(`${label}@insecureTls`, insecure.error);
  else if (insecure.value && driver !== 'redfish')
    bad(`${label}@insecureTls`, `insecureTls applies to the redfish driver only, not ${driver}`);
  const user = attr(pw, 'user');
  return {
    errors,
    power: {
      driver,
      ...(address ? { address } : {}),
      ...(user ? { user } : {}),
      ...(pwFile ? { passwordFile: pwFile } : {}),
      ...(insecure.value ? { insecureTls: true } : {}),
    },
  };
}
