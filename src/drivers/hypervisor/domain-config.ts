// Renders the real xl.cfg for one VM from its template (xl.cfg(5)). The validator already refused values
// that could break out of quotes; quoting here is a second line of defence, never the first.

import type { TemplateSpec, VmSpec } from '../../site/model.ts';
import type { DomainConfig } from './hypervisor.ts';

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

/** Reads back the fields XSM sets, from an xl.cfg text (the simulator admits domains from this). */
export function readDomainConfig(text: string): {
  name: string;
  memMiB: number;
  maxMemMiB: number;
  vcpus: number;
  maxVcpus: number;
} {
  const get = (key: string): string | undefined => {
    const m = new RegExp(`^\\s*${key}\\s*=\\s*(.+?)\\s*$`, 'm').exec(text);
    return m?.[1]?.replace(/^["']|["']$/g, '');
  };
  const num = (key: string, fallback?: number): number => {
    const v = get(key);
    if (v === undefined) {
      if (fallback === undefined) throw new Error(`domain config has no ${key}`);
      return fallback;
    }
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`domain config ${key} = ${v} is not a positive integer`);
    return n;
  };
  const name = get('name');
  if (!name) throw new Error('domain config has no name');
  const memMiB = num('memory');
  const vcpus = num('vcpus', 1);
  return { name, memMiB, maxMemMiB: num('maxmem', memMiB), vcpus, maxVcpus: num('maxvcpus', vcpus) };
}
