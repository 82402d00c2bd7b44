// Loads a site file: untrusted XML in, a validated Site (or every problem, with file:line:col) out.
// The paper's <XSMConfig><Set><VM> format loads unchanged; <Hosts>, <Templates> and <Placement> extend it.

import { readFile, stat } from 'node:fs/promises';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import type {
  DiskSpec,
  HostSpec,
  LoadResult,
  PowerSpec,
  SetSpec,
  Site,
  SiteIssue,
  SourcePos,
  TemplateSpec,
  VmSpec,
} from './model.ts';
import { addVm, declaredCapacity, emptyLoad, whyNotFits, type HostLoad } from './capacity.ts';
import { impliedTemplate } from './templates.ts';
import { childPos, scanElements, type ElementPos } from './xml-scan.ts';
import { checkPasswordFilePath, checkPowerAddress, powerPolicyFromEnv, type PowerPolicy } from './power-policy.ts';
import {
  canonicalIp,
  checkAddress,
  checkConfigText,
  checkName,
  checkPath,
  checkVmIp,
  normaliseMac,
  parseBool,
  parseInteger,
} from './validate.ts';

export const MAX_SITE_BYTES = 64 * 1024 * 1024;
export const MAX_DEPTH = 16;
const MAX_MEM_MIB = 16 * 1024 * 1024; // 16 TiB
const MAX_VCPUS = 512;

export interface LoadOptions {
  /** Hosts known from elsewhere (deployed hosts in Redis) for a file that declares no <Hosts>. */
  inventory?: HostSpec[];
  /**
   * Where <Power> may point (default: XSM_SECRETS_DIR, XSM_QMP_DIR, XSM_POWER_ALLOW_LOCAL). `false` for a
   * stored version, accepted when it was submitted: its power is checked again, on the real files, at use.
   */
  power?: PowerPolicy | false;
}

type XmlNode = Record<string, unknown>;
const REPEATED = new Set(['Set', 'VM', 'Host', 'Template', 'Disk']);
/** Elements that hold only text: attributes on them are ignored (and warned about). */
const LEAVES = new Set([
  'Owner',
  'DOM0',
  'VCPUS',
  'HWADDR',
  'IP',
  'MEM',
  'Kernel',
  'Ramdisk',
  'Bootloader',
  'Extra',
  'Bridge',
]);

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  // Entity processing is off: DOCTYPEs are refused before parsing, and the five XML built-ins and character
  // references are decoded here (decodeEntities), so the parser never expands anything.
  processEntities: false,
  htmlEntities: false,
  // Callbacks get the matcher, not a rebuilt path string per element (a third of parse time otherwise).
  jPath: false,
  isArray: (name) => REPEATED.has(name),
});

const BUILTIN_ENTITIES = new Map([
  ['lt', '<'],
  ['gt', '>'],
  ['amp', '&'],
  ['quot', '"'],
  ['apos', "'"],
]);
const ENTITY_REF = /&(?:#(\d{1,7})|#x([0-9a-fA-F]{1,6})|([A-Za-z]+));/g;

/** Decodes the five XML built-in entities and character references; anything else is left as written. */
export function decodeEntities(s: string): string {
  if (!s.includes('&')) return s;
  return s.replace(ENTITY_REF, (whole, dec: string | undefined, hex: string | undefined, named: string | undefined) => {
    if (named !== undefined) return BUILTIN_ENTITIES.get(named) ?? whole;
    const cp = dec !== undefined ? Number(dec) : parseInt(hex!, 16);
    const ok =
      (cp === 0x9 || cp === 0xa || cp === 0xd || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0x10ffff)) &&
      cp !== 0xfffe &&
      cp !== 0xffff;
    return ok ? String.fromCodePoint(cp) : whole;
  });
}

function text(node: unknown): string | undefined {
  if (node === undefined || node === null) return undefined;
  if (typeof node === 'string') return decodeEntities(node);
  if (typeof node === 'number' || typeof node === 'boolean') return String(node);
  // A repeated element: the first counts, and Collector.unknown refuses the rest.
  if (Array.isArray(node)) return text(node[0]);
  if (typeof node === 'object' && '#text' in (node as XmlNode))
    return decodeEntities(String((node as XmlNode)['#text']));
  if (typeof node === 'object') return '';
  return undefined;
}

function attr(node: unknown, name: string): string | undefined {
  if (!node || typeof node !== 'object') return undefined;
  const v = (node as XmlNode)[`@_${name}`];
  return v === undefined ? undefined : decodeEntities(String(v));
}

function asArray(v: unknown): XmlNode[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((x) => (x && typeof x === 'object' ? (x as XmlNode) : ({ '#text': x } as XmlNode)));
}

class Collector {
  readonly errors: SiteIssue[] = [];
  readonly warnings: SiteIssue[] = [];
  constructor(readonly file: string) {}
  pos(p: ElementPos | undefined): SourcePos {
    return { file: this.file, line: p?.line ?? 1, col: p?.col ?? 1 };
  }
  error(p: ElementPos | undefined, element: string, message: string): void {
    this.errors.push({ file: this.file, line: p?.line ?? 1, col: p?.col ?? 1, element, message });
  }
  warn(p: ElementPos | undefined, element: string, message: string): void {
    this.warnings.push({ file: this.file, line: p?.line ?? 1, col: p?.col ?? 1, element, message });
  }
  /** Warn about attributes and child elements XSM does not know (a typo would otherwise be silently ignored). */
  unknown(
    node: XmlNode,
    p: ElementPos | undefined,
    element: string,
    attrs: readonly string[],
    children: readonly string[],
  ): void {
    for (const key of Object.keys(node)) {
      if (key === '#text') continue;
      if (key.startsWith('@_')) {
        if (!attrs.includes(key.slice(2))) this.warn(p, element, `unknown attribute ${key.slice(2)} is ignored`);
      } else if (!children.includes(key)) {
        this.warn(childPos(p, key) ?? p, `${element}/${key}`, `unknown element <${key}> is ignored`);
      } else if (LEAVES.has(key) && node[key] && typeof node[key] === 'object' && !Array.isArray(node[key])) {
        // e.g. <MEM unit="GiB">: the value is read as MiB all the same, so say that the attribute does nothing.
        for (const a of Object.keys(node[key] as XmlNode)) {
          if (a.startsWith('@_'))
            this.warn(
              childPos(p, key) ?? p,
              `${element}/${key}`,
              `attribute ${a.slice(2)} on <${key}> is ignored${key === 'MEM' ? ' (MEM is always MiB)' : ''}`,
            );
        }
      } else if (!REPEATED.has(key) && Array.isArray(node[key])) {
        const second = childPos(p, key, 1);
        const first = childPos(p, key, 0);
        this.error(
          second ?? p,
          `${element}/${key}`,
          `<${key}> is given more than once (first at ${this.file}:${first?.line ?? '?'}:${first?.col ?? '?'}); keep exactly one`,
        );
      }
    }
  }
}

/** More than this many issues is one mistake repeated (or a hostile file): the rest are summarised. */
export const MAX_ISSUES = 500;

function capped(issues: SiteIssue[], file: string): SiteIssue[] {
  if (issues.length <= MAX_ISSUES) return issues;
  const last = issues[MAX_ISSUES - 1]!;
  return [
    ...issues.slice(0, MAX_ISSUES),
    {
      file,
      line: last.line,
      col: last.col,
      element: 'XSMConfig',
      message: `${issues.length - MAX_ISSUES} more issues are not shown; fix the ones above and load again`,
    },
  ];
}

export async function loadSiteFile(path: string, options: LoadOptions = {}): Promise<LoadResult> {
  const info = await stat(path).catch((e: NodeJS.ErrnoException) => {
    throw new Error(`${path}: cannot read site file: ${e.code === 'ENOENT' ? 'no such file' : e.message}`);
  });
  if (info.size > MAX_SITE_BYTES) {
    return {
      ok: false,
      warnings: [],
      errors: [
        {
          file: path,
          line: 1,
          col: 1,
          element: 'XSMConfig',
          message: `file is ${info.size} bytes; the limit is ${MAX_SITE_BYTES}`,
        },
      ],
    };
  }
  return loadSite(await readFile(path, 'utf8'), path, options);
}

export function loadSite(xml: string, file: string, options: LoadOptions = {}): LoadResult {
  const c = new Collector(file);
  // Reported in file order, so an operator can fix them top to bottom.
  const byPlace = (a: SiteIssue, b: SiteIssue) => a.line - b.line || a.col - b.col;
  const fail = (): LoadResult => ({
    ok: false,
    errors: capped(c.errors.sort(byPlace), file),
    warnings: capped(c.warnings.sort(byPlace), file),
  });

  if (xml.length > MAX_SITE_BYTES) {
    c.error(undefined, 'XSMConfig', `file is ${xml.length} bytes; the limit is ${MAX_SITE_BYTES}`);
    return fail();
  }
  const scan = scanElements(xml);
  if (scan.declaration) {
    c.error(
      { name: '', line: scan.declaration.line, col: scan.declaration.col, children: [] },
      `<!${scan.declaration.kind}>`,
      'DOCTYPE and ENTITY declarations are not allowed in a site file (no entity expansion, no external reads); remove it',
    );
    return fail();
  }
  // Depth is checked before the validator and parser walk the text: a hostile file nests deeply on purpose.
  if (scan.maxDepth > MAX_DEPTH) {
    c.error(
      undefined,
      'XSMConfig',
      `elements are nested ${scan.maxDepth} deep; a site file needs at most ${MAX_DEPTH}: this is not a site file`,
    );
    return fail();
  }
  // Reported before the validator, whose "Multiple possible root nodes" would not say which two they are.
  if (scan.root.children.length > 1) {
    const [first, second] = scan.root.children;
    c.error(
      second,
      `<${second!.name}>`,
      `the file has ${scan.root.children.length} root elements (<${first!.name}> at ${file}:${first!.line}:${first!.col} and <${second!.name}> here); a site file has exactly one <XSMConfig>: merge them or remove one`,
    );
    return fail();
  }
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    c.error(
      { name: '', line: valid.err.line, col: valid.err.col, children: [] },
      'XML',
      `malformed XML: ${valid.err.msg.length > 160 ? `${valid.err.msg.slice(0, 160)}...` : valid.err.msg}; fix the file at this place`,
    );
    return fail();
  }
  if (scan.reservedName) {
    const r = scan.reservedName;
    c.error(
      { name: '', line: r.line, col: r.col, children: [] },
      `<${r.name}>`,
      `element name <${r.name}> is not allowed in a site file; remove it`,
    );
    return fail();
  }
  const rootPos = scan.root.children[0];
  if (!rootPos || rootPos.name !== 'XSMConfig' || scan.root.children.length !== 1) {
    c.error(
      rootPos,
      rootPos?.name ?? 'XML',
      `the root element must be <XSMConfig>${rootPos ? `, not <${rootPos.name}>` : ''}`,
    );
    return fail();
  }
  let doc: XmlNode;
  try {
    doc = parser.parse(xml) as XmlNode;
  } catch (e) {
    // The validator and the parser disagree on a few malformed inputs (found by fuzzing: `<?"xml ...?>`
    // passes the validator and stops the parser). Such a file is refused like any malformed one, never
    // with an exception the caller would turn into a 500. The parser does not say where; the declaration
    // or the first element is the place to look.
    const message = e instanceof Error ? e.message : String(e);
    c.error(
      { name: '', line: 1, col: 1, children: [] },
      'XML',
      `malformed XML: ${message.slice(0, 160)}; check the XML declaration and the markup before <XSMConfig>`,
    );
    return fail();
  }
  const root = (doc.XSMConfig && typeof doc.XSMConfig === 'object' ? doc.XSMConfig : {}) as XmlNode;
  c.unknown(root, rootPos, 'XSMConfig', ['version'], ['Hosts', 'Templates', 'Set']);

  const hostsDeclared = root.Hosts !== undefined;
  const templatesDeclared = root.Templates !== undefined;
  // Names of declared hosts/templates that were refused: a VM naming one gets no second, misleading error.
  const refused = new Set<string>();
  const hosts = readHosts(c, root, rootPos, refused, options.power ?? powerPolicyFromEnv());
  const templates = readTemplates(c, root, rootPos, refused);

  if (!hostsDeclared && options.inventory) {
    for (const h of options.inventory) hosts.push({ ...h });
  }
  const hostByName = new Map(hosts.map((h) => [h.name, h]));
  const hostByAddress = new Map(hosts.map((h) => [canonicalIp(h.address), h]));
  const templateByName = new Map(templates.map((t) => [t.name, t]));
  const hostMacs = new Map<string, string>();
  for (const h of hosts) if (h.bootMac) hostMacs.set(h.bootMac, `host ${h.name}`);

  const sets: SetSpec[] = [];
  const vms: VmSpec[] = [];
  const vmSeen = new Map<string, { name: string; pos: ElementPos | undefined }>();
  const macSeen = new Map<string, ElementPos | undefined>();
  const ipSeen = new Map<string, { vm: string; ip: string }>();
  const setSeen = new Set<string>();
  const loads = new Map<string, HostLoad>();
  const impliedWarned = new Set<string>();

  asArray(root.Set).forEach((setNode, si) => {
    const setPos = childPos(rootPos, 'Set', si);
    const setName = attr(setNode, 'name');
    const setLabel = `Set[name=${setName ?? '?'}]`;
    c.unknown(setNode, setPos, setLabel, ['name'], ['Owner', 'VM']);
    const nameErr = checkName(setName, 'set name');
    if (nameErr) c.error(setPos, setLabel, nameErr);
    else if (setSeen.has(setName!))
      c.error(setPos, setLabel, `set name ${setName} is used twice; give each Set its own name`);
    setSeen.add(setName ?? '');
    const owner = text(setNode.Owner);
    const set: SetSpec = { name: setName ?? '', vms: [], pos: c.pos(setPos), ...(owner ? { owner } : {}) };
    sets.push(set);

    asArray(setNode.VM).forEach((vmNode, vi) => {
      const vmPos = childPos(setPos, 'VM', vi);
      const name = attr(vmNode, 'name');
      const label = `VM[name=${name ?? '?'}]`;
      const at = (child: string) => childPos(vmPos, child) ?? vmPos;
      c.unknown(vmNode, vmPos, label, ['name', 'config'], ['DOM0', 'VCPUS', 'HWADDR', 'IP', 'MEM', 'Placement']);
      let ok = true;
      const bad = (p: ElementPos | undefined, el: string, msg: string) => {
        c.error(p, el, msg);
        ok = false;
      };

      const nErr = checkName(name, 'VM name');
      if (nErr) bad(vmPos, label, nErr);
      else if (vmSeen.has(name!.toLowerCase())) {
        // Case-blind: Xen domain names, DNS and operators' eyes do not tell vm1 from VM1.
        const first = vmSeen.get(name!.toLowerCase())!;
        bad(
          vmPos,
          label,
          `VM name ${name} is already used${first.name === name ? '' : ` as ${first.name}`} at ${file}:${first.pos?.line ?? '?'}:${first.pos?.col ?? '?'}; VM names must be unique across all Sets${first.name === name ? '' : ', ignoring case'}`,
        );
      } else vmSeen.set(name!.toLowerCase(), { name: name!, pos: vmPos });

      const config = attr(vmNode, 'config');
      const cErr = checkName(config, 'config (template name)');
      if (cErr) bad(vmPos, `${label}@config`, cErr);

      const vcpus = parseInteger(text(vmNode.VCPUS), 'VCPUS', 1, MAX_VCPUS);
      if (vcpus.error) bad(at('VCPUS'), `${label}/VCPUS`, vcpus.error);
      const mem = parseInteger(text(vmNode.MEM), 'MEM (MiB)', 16, MAX_MEM_MIB);
      if (mem.error) bad(at('MEM'), `${label}/MEM`, mem.error);

      const mac = normaliseMac(text(vmNode.HWADDR));
      if (mac.error) bad(at('HWADDR'), `${label}/HWADDR`, mac.error);
      else if (macSeen.has(mac.value!)) {
        const first = macSeen.get(mac.value!);
        bad(
          at('HWADDR'),
          `${label}/HWADDR`,
          `MAC ${mac.value} is already used at ${file}:${first?.line ?? '?'}:${first?.col ?? '?'}; every VM needs its own MAC`,
        );
      } else if (hostMacs.has(mac.value!)) {
        bad(at('HWADDR'), `${label}/HWADDR`, `MAC ${mac.value} is the boot MAC of ${hostMacs.get(mac.value!)}`);
      } else macSeen.set(mac.value!, at('HWADDR'));

      const ip = text(vmNode.IP)?.trim();
      const ipErr = checkVmIp(ip);
      if (ipErr) bad(at('IP'), `${label}/IP`, ipErr);
      else if (ip !== 'DHCP') {
        const other = ipSeen.get(canonicalIp(ip!));
        if (other)
          bad(
            at('IP'),
            `${label}/IP`,
            `static IP ${ip} is already given to VM ${other.vm}${other.ip === ip ? '' : ` (as ${other.ip}, the same address)`}`,
          );
        else ipSeen.set(canonicalIp(ip!), { vm: name ?? '?', ip: ip! });
      }

      // DOM0: a host name or address. Without an inventory, each DOM0 implies a host of unknown capacity.
      const dom0 = text(vmNode.DOM0)?.trim();
      let host: HostSpec | undefined;
      if (!dom0) bad(at('DOM0'), `${label}/DOM0`, 'DOM0 is missing: name the host (or its address) this VM runs on');
      else {
        host = hostByName.get(dom0) ?? hostByAddress.get(canonicalIp(dom0));
        if (!host && refused.has(`host:${dom0}`)) ok = false;
        else if (!host && (hostsDeclared || options.inventory?.length)) {
          bad(
            at('DOM0'),
            `${label}/DOM0`,
            `DOM0 ${JSON.stringify(dom0.slice(0, 60))} is no known host; declare it in <Hosts> or use one of: ${[...hostByName.keys()].slice(0, 8).join(', ')}`,
          );
        } else if (!host) {
          const addrErr = checkAddress(dom0, 'DOM0');
          // An undeclared host is named by its DOM0 text, and names become queue names and Redis keys, which
          // cannot hold ':'. An IPv6 DOM0 is named by its canonical address with '-' for ':'.
          const v6 = !addrErr && !dom0.includes('.') && dom0.includes(':');
          const impliedName = v6 ? canonicalIp(dom0).replace(/:/g, '-') : dom0;
          const safe = addrErr ? undefined : checkName(impliedName, 'DOM0');
          if (addrErr || safe) bad(at('DOM0'), `${label}/DOM0`, addrErr ?? safe!);
          else if (hostByName.has(impliedName)) host = hostByName.get(impliedName);
          else {
            host = {
              name: impliedName,
              address: v6 ? canonicalIp(dom0) : dom0,
              cpus: 0,
              memoryMiB: 0,
              maintenance: false,
              implied: true,
              pos: c.pos(at('DOM0')),
            };
            hosts.push(host);
            hostByName.set(impliedName, host);
            hostByAddress.set(canonicalIp(dom0), host);
            if (!impliedWarned.has(impliedName)) {
              impliedWarned.add(impliedName);
              c.warn(
                at('DOM0'),
                `${label}/DOM0`,
                `host ${dom0} is not declared in <Hosts>: its capacity is unknown and not checked${v6 ? `; its agent and queue are named ${impliedName}` : ''}`,
              );
            }
          }
        }
      }

      let template = config ? templateByName.get(config) : undefined;
      if (config && !cErr && !template) {
        if (refused.has(`template:${config}`)) ok = false;
        else if (templatesDeclared) bad(vmPos, `${label}@config`, `template ${config} is not declared in <Templates>`);
        else {
          template = impliedTemplate(config);
          templates.push(template);
          templateByName.set(config, template);
          c.warn(
            vmPos,
            `${label}@config`,
            `template ${config} is not declared: using the built-in default (PVH, /srv/xen/kernels/vmlinuz, disk /srv/xen/disks/{vm}.img on xenbr0)`,
          );
        }
      }
      if (template && vcpus.value !== undefined && template.maxVcpus !== undefined && vcpus.value > template.maxVcpus) {
        bad(
          at('VCPUS'),
          `${label}/VCPUS`,
          `VCPUS ${vcpus.value} exceeds template ${template.name}'s maxvcpus ${template.maxVcpus}`,
        );
      }
      if (template && mem.value !== undefined && template.maxMemMiB !== undefined && mem.value > template.maxMemMiB) {
        bad(
          at('MEM'),
          `${label}/MEM`,
          `MEM ${mem.value} exceeds template ${template.name}'s maxmem ${template.maxMemMiB}`,
        );
      }

      const pl = vmNode.Placement as XmlNode | undefined;
      const plPos = childPos(vmPos, 'Placement');
      if (pl) c.unknown(pl, plPos, `${label}/Placement`, ['pinned', 'antiAffinity', 'rebalance', 'priority'], []);
      const pinned = parseBool(attr(pl, 'pinned'), 'pinned', false);
      const rebalance = parseBool(attr(pl, 'rebalance'), 'rebalance', true);
      if (pinned.error) bad(plPos, `${label}/Placement@pinned`, pinned.error);
      if (rebalance.error) bad(plPos, `${label}/Placement@rebalance`, rebalance.error);
      const anti = attr(pl, 'antiAffinity');
      if (anti !== undefined) {
        const e = checkName(anti, 'antiAffinity group');
        if (e) bad(plPos, `${label}/Placement@antiAffinity`, e);
      }
      const prioText = attr(pl, 'priority');
      const prio = prioText === undefined ? { value: 0 } : parseInteger(prioText, 'priority', 0, 1000);
      if (prio.error) bad(plPos, `${label}/Placement@priority`, prio.error);

      if (!ok || !host || !template || !name) return;
      const vm: VmSpec = {
        name,
        set: set.name,
        config: template.name,
        host: host.name,
        vcpus: vcpus.value!,
        memMiB: mem.value!,
        hwaddr: mac.value!,
        ip: ip!,
        placement: {
          pinned: pinned.value,
          noRebalance: !rebalance.value,
          priority: prio.value ?? 0,
          ...(anti !== undefined ? { antiAffinity: anti } : {}),
        },
        pos: c.pos(vmPos),
      };
      if (host.maintenance)
        c.warn(
          at('DOM0'),
          `${label}/DOM0`,
          `host ${host.name} is in maintenance; the rebalancer will move ${name} off it`,
        );
      let load = loads.get(host.name);
      if (!load) loads.set(host.name, (load = emptyLoad()));
      const why = whyNotFits(declaredCapacity(host), load, vm);
      if (why) {
        const short =
          vm.vcpus > host.cpus ? `${vm.vcpus - host.cpus} vCPUs` : `${vm.memMiB - (host.memoryMiB - load.memMiB)} MiB`;
        c.error(
          vmPos,
          label,
          `does not fit: ${why} (${short} missing); move it to another DOM0 or lower its MEM/VCPUS`,
        );
        return;
      }
      addVm(load, vm);
      set.vms.push(name);
      vms.push(vm);
    });
  });

  if (c.errors.length) return fail();
  const site: Site = { hosts, templates, sets, vms };
  return { ok: true, site, warnings: capped(c.warnings.sort(byPlace), file) };
}

function readHosts(
  c: Collector,
  root: XmlNode,
  rootPos: ElementPos,
  refused: Set<string>,
  policy: PowerPolicy | false,
): HostSpec[] {
  const hosts: HostSpec[] = [];
  if (root.Hosts === undefined) return hosts;
  const hostsPos = childPos(rootPos, 'Hosts');
  const hostsNode = (root.Hosts && typeof root.Hosts === 'object' ? root.Hosts : {}) as XmlNode;
  c.unknown(hostsNode, hostsPos, 'Hosts', [], ['Host']);
  const names = new Map<string, string>();
  const addresses = new Map<string, string>();
  const macs = new Map<string, string>();
  asArray(hostsNode.Host).forEach((node, i) => {
    const p = childPos(hostsPos, 'Host', i);
    const name = attr(node, 'name');
    const label = `Host[name=${name ?? '?'}]`;
    c.unknown(node, p, label, ['name', 'address', 'mac', 'cpus', 'memory', 'maintenance'], ['Power']);
    let ok = true;
    const bad = (el: string, msg: string, at = p) => {
      c.error(at, el, msg);
      ok = false;
    };
    const nErr = checkName(name, 'host name');
    if (nErr) bad(label, nErr);
    else if (names.has(name!.toLowerCase()))
      bad(
        label,
        `host name ${name} is declared twice${names.get(name!.toLowerCase()) === name ? '' : ' (names ignore case, as DNS does)'}; give each Host its own name`,
      );
    const address = attr(node, 'address')?.trim();
    const aErr = checkAddress(address, 'address');
    if (aErr) bad(`${label}@address`, aErr);
    else if (addresses.has(canonicalIp(address!)))
      bad(
        `${label}@address`,
        `address ${address} is also host ${addresses.get(canonicalIp(address!))}'s; each Host needs its own address`,
      );
    let bootMac: string | undefined;
    const macText = attr(node, 'mac');
    if (macText !== undefined) {
      const m = normaliseMac(macText);
      if (m.error) bad(`${label}@mac`, m.error);
      else if (macs.has(m.value!))
        bad(
          `${label}@mac`,
          `boot MAC ${m.value} is also host ${macs.get(m.value!)}'s; each Host needs its own boot MAC`,
        );
      else bootMac = m.value;
    }
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
    if (name) names.set(name.toLowerCase(), name);
    if (address && name) addresses.set(canonicalIp(address), name);
    if (bootMac && name) macs.set(bootMac, name);
    if (!ok) {
      if (name) refused.add(`host:${name}`);
      if (address) refused.add(`host:${address}`);
      return;
    }
    hosts.push({
      name: name!,
      address: address!,
      cpus: cpus.value!,
      memoryMiB: memory.value!,
      maintenance: maint.value,
      implied: false,
      pos: c.pos(p),
      ...(bootMac ? { bootMac } : {}),
      ...(power ? { power } : {}),
    });
  });
  return hosts;
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

function readTemplates(c: Collector, root: XmlNode, rootPos: ElementPos, refused: Set<string>): TemplateSpec[] {
  const templates: TemplateSpec[] = [];
  if (root.Templates === undefined) return templates;
  const tPos = childPos(rootPos, 'Templates');
  const tNode = (root.Templates && typeof root.Templates === 'object' ? root.Templates : {}) as XmlNode;
  c.unknown(tNode, tPos, 'Templates', [], ['Template']);
  const names = new Set<string>();
  asArray(tNode.Template).forEach((node, i) => {
    const p = childPos(tPos, 'Template', i);
    const name = attr(node, 'name');
    const label = `Template[name=${name ?? '?'}]`;
    c.unknown(
      node,
      p,
      label,
      ['name', 'type', 'maxmem', 'maxvcpus', 'weight'],
      ['Kernel', 'Ramdisk', 'Bootloader', 'Extra', 'Disk', 'Bridge'],
    );
    let ok = true;
    const bad = (el: string, msg: string, at = p) => {
      c.error(at, el, msg);
      ok = false;
    };
    const nErr = checkName(name, 'template name');
    if (nErr) bad(label, nErr);
    else if (names.has(name!)) bad(label, `template ${name} is declared twice; give each Template its own name`);
    if (name) names.add(name);
    const type = attr(node, 'type') ?? 'pvh';
    if (type !== 'pv' && type !== 'pvh' && type !== 'hvm')
      bad(`${label}@type`, `type ${JSON.stringify(type)} is not one of pv, pvh, hvm`);
    const opt = (key: string, what: string, min: number, max: number) => {
      const v = attr(node, key);
      if (v === undefined) return undefined;
      const r = parseInteger(v, what, min, max);
      if (r.error) bad(`${label}@${key}`, r.error);
      return r.value;
    };
    const maxMemMiB = opt('maxmem', 'maxmem (MiB)', 16, MAX_MEM_MIB);
    const maxVcpus = opt('maxvcpus', 'maxvcpus', 1, MAX_VCPUS);
    const weight = opt('weight', 'weight', 1, 65535);
    const pathOf = (key: string) => {
      const v = text(node[key]);
      if (v === undefined || v === '') return undefined;
      const e = checkPath(v, key);
      if (e) bad(`${label}/${key}`, e, childPos(p, key) ?? p);
      return v;
    };
    const kernel = pathOf('Kernel');
    const ramdisk = pathOf('Ramdisk');
    const bootloader = pathOf('Bootloader');
    if (!kernel && !bootloader && type !== 'hvm') bad(label, `a ${type} template needs a <Kernel> or a <Bootloader>`);
    const extra = text(node.Extra);
    if (extra) {
      const e = checkConfigText(extra, 'Extra');
      if (e) bad(`${label}/Extra`, e, childPos(p, 'Extra') ?? p);
    }
    const bridge = text(node.Bridge)?.trim() || 'xenbr0';
    const bErr = checkName(bridge, 'Bridge');
    if (bErr) bad(`${label}/Bridge`, bErr, childPos(p, 'Bridge') ?? p);
    const disks: DiskSpec[] = [];
    const vdevs = new Set<string>();
    asArray(node.Disk).forEach((d, di) => {
      const dp = childPos(p, 'Disk', di);
      const el = `${label}/Disk[${di + 1}]`;
      c.unknown(d, dp, el, ['target', 'vdev', 'format', 'access'], []);
      const target = attr(d, 'target');
      const tErr = checkPath(target, 'disk target');
      if (tErr) bad(el, tErr, dp);
      const vdev = attr(d, 'vdev') ?? 'xvda';
      if (!/^(xvd|hd|sd)[a-z]{1,2}$/.test(vdev))
        bad(el, `vdev ${JSON.stringify(vdev)} must look like xvda, hda or sda`, dp);
      else if (vdevs.has(vdev)) bad(el, `vdev ${vdev} is used by two disks`, dp);
      vdevs.add(vdev);
      const format = attr(d, 'format') ?? 'raw';
      if (format !== 'raw' && format !== 'qcow2' && format !== 'vhd')
        bad(el, `format ${JSON.stringify(format)} is not raw, qcow2 or vhd`, dp);
      const access = attr(d, 'access') ?? 'rw';
      if (access !== 'rw' && access !== 'ro') bad(el, `access ${JSON.stringify(access)} is not rw or ro`, dp);
      if (target)
        disks.push({ target, vdev, format: format as DiskSpec['format'], access: access as DiskSpec['access'] });
    });
    if (!ok) {
      if (name) refused.add(`template:${name}`);
      return;
    }
    templates.push({
      name: name!,
      type: type as TemplateSpec['type'],
      disks,
      bridge,
      implied: false,
      pos: c.pos(p),
      ...(kernel ? { kernel } : {}),
      ...(ramdisk ? { ramdisk } : {}),
      ...(bootloader ? { bootloader } : {}),
      ...(extra ? { extra } : {}),
      ...(maxMemMiB !== undefined ? { maxMemMiB } : {}),
      ...(maxVcpus !== undefined ? { maxVcpus } : {}),
      ...(weight !== undefined ? { weight } : {}),
    });
  });
  return templates;
}
