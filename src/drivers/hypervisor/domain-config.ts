// Renders the real xl.cfg for one VM from its template (xl.cfg(5)). The validator already refused values
// that could break out of quotes; quoting here is a second line of defence, never the first.

import type { TemplateSpec, VmSpec } from '../../site/model.ts';
import type { DomainNic } from '../../site/domain.ts';
import { applyXlOverrides, parseXlConfig, XlConfigError, xlValue } from '../../site/xl-config.ts';
import { HypervisorRefusal, type DomainConfig, type Hypervisor } from './hypervisor.ts';

function q(value: string): string {
  if (/["\\\n\r]/.test(value))
    throw new Error(
      `refusing to write ${JSON.stringify(value)} into an xl config: quotes, backslashes and newlines are not allowed`,
    );
  return `"${value}"`;
}

export function renderDomainConfig(vm: VmSpec, template: TemplateSpec): DomainConfig {
  const maxmem = Math.max(template.maxMemMiB ?? vm.memMiB, vm.memMiB);
  const maxvcpus = Math.max(template.maxVcpus ?? vm.vcpus, vm.vcpus);
  const lines = [
    `# Written by XSM for VM ${vm.name} (set ${vm.set}, template ${template.name}). Do not edit: the site file is the truth.`,
    `name = ${q(vm.name)}`,
    `type = ${q(template.type)}`,
    `memory = ${vm.memMiB}`,
    `maxmem = ${maxmem}`,
    `vcpus = ${vm.vcpus}`,
    `maxvcpus = ${maxvcpus}`,
  ];
  if (template.bootloader) lines.push(`bootloader = ${q(template.bootloader)}`);
  else if (template.kernel) {
    lines.push(`kernel = ${q(template.kernel)}`);
    if (template.ramdisk) lines.push(`ramdisk = ${q(template.ramdisk)}`);
    const extra = [template.extra, vm.ip !== 'DHCP' ? `ip=${vm.ip}` : undefined].filter(Boolean).join(' ');
    if (extra) lines.push(`extra = ${q(extra)}`);
  }
  const disks = template.disks.map(
    (d) => `'format=${d.format}, vdev=${d.vdev}, access=${d.access}, target=${d.target.replaceAll('{vm}', vm.name)}'`,
  );
  lines.push(`disk = [ ${disks.join(', ')} ]`);
  lines.push(`vif = [ 'mac=${vm.hwaddr},bridge=${template.bridge}' ]`);
  lines.push('on_poweroff = "destroy"', 'on_reboot = "restart"', 'on_crash = "restart"');
  return { name: vm.name, text: lines.join('\n') + '\n' };
}

/**
 * The domain config XSM creates `vm` from on `hv`'s host: rendered from a declared template, or the
 * operator's config file there with the VM's name, MEM, VCPUS, HWADDR and IP set over it. A file that is
 * missing or unreadable is a refusal (retrying does not bring it back), naming the file and the host.
 */
export async function buildDomainConfig(hv: Hypervisor, vm: VmSpec, template: TemplateSpec): Promise<DomainConfig> {
  if (!template.configFile) return renderDomainConfig(vm, template);
  const text = await hv.readConfigFile(template.configFile);
  if (text === undefined) {
    const { dir } = await hv.configFiles();
    throw new HypervisorRefusal(
      hv.hostName,
      `config file ${dir}/${template.configFile} for ${vm.name} is not there; put it back (the plan saw it) and retry the job`,
    );
  }
  try {
    const over = applyXlOverrides(text, {
      name: vm.name,
      memMiB: vm.memMiB,
      vcpus: vm.vcpus,
      hwaddr: vm.hwaddr,
      ip: vm.ip,
    });
    return { name: vm.name, text: over };
  } catch (e) {
    if (!(e instanceof XlConfigError)) throw e;
    throw new HypervisorRefusal(hv.hostName, `config file ${template.configFile}:${e.message}`);
  }
}

/** Reads back the fields XSM sets, from an xl.cfg text (the simulator admits domains from this). */
export function readDomainConfig(text: string): {
  name: string;
  memMiB: number;
  maxMemMiB: number;
  vcpus: number;
  maxVcpus: number;
  nics: DomainNic[];
} {
  let entries;
  try {
    entries = parseXlConfig(text);
  } catch (e) {
    throw new Error(`domain config: ${(e as Error).message}`);
  }
  const num = (key: string, fallback?: number): number => {
    const v = xlValue(entries, key);
    if (v === undefined) {
      if (fallback === undefined) throw new Error(`domain config has no ${key}`);
      return fallback;
    }
    const n = v.kind === 'list' ? NaN : Number(v.value);
    if (!Number.isInteger(n) || n <= 0)
      throw new Error(`domain config ${key} = ${v.kind === 'list' ? '[...]' : v.value} is not a positive integer`);
    return n;
  };
  const nameValue = xlValue(entries, 'name');
  const name = nameValue?.kind === 'string' ? nameValue.value : undefined;
  if (!name) throw new Error('domain config has no name');
  const memMiB = num('memory');
  const vcpus = num('vcpus', 1);
  const vif = xlValue(entries, 'vif');
  const nics = (vif?.kind === 'list' ? vif.items : []).map(readVif).filter((n): n is DomainNic => n !== undefined);
  return { name, memMiB, maxMemMiB: num('maxmem', memMiB), vcpus, maxVcpus: num('maxvcpus', vcpus), nics };
}

/** A VIFSPEC's mac and ip (`mac=...,bridge=...,ip=...`); a vif without a mac gets a random one in Xen. */
function readVif(spec: string): DomainNic | undefined {
  const kv = new Map(
    spec.split(',').map((p) => {
      const i = p.indexOf('=');
      return [p.slice(0, i).trim(), p.slice(i + 1).trim()] as const;
    }),
  );
  const mac = kv.get('mac')?.toLowerCase();
  if (!mac) return undefined;
  const ip = kv.get('ip');
  return ip ? { mac, ip } : { mac };
}
