// Writes a Site back as a site file. Implied hosts and templates are not written, so a paper-format file
// round-trips to a paper-format file; defaults are omitted so the output stays as small as the input.

import type { DiskLayoutSpec, DiskSpec, HostSpec, PoolSpec, Site, TemplateSpec, VmSpec } from './model.ts';

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function hostXml(h: HostSpec): string {
  const attrs = [`name="${esc(h.name)}"`, `address="${esc(h.address)}"`];
  if (h.bootMac) attrs.push(`mac="${h.bootMac}"`);
  attrs.push(`cpus="${h.cpus}"`, `memory="${h.memoryMiB}"`);
  if (h.maintenance) attrs.push('maintenance="true"');
  if (h.layout) attrs.push(`layout="${esc(h.layout)}"`);
  if (!h.power) return `    <Host ${attrs.join(' ')}/>`;
  const p = h.power;
  const pa = [`driver="${p.driver}"`];
  if (p.address) pa.push(`address="${esc(p.address)}"`);
  if (p.user) pa.push(`user="${esc(p.user)}"`);
  if (p.passwordFile) pa.push(`passwordFile="${esc(p.passwordFile)}"`);
  if (p.insecureTls) pa.push('insecureTls="true"');
  return `    <Host ${attrs.join(' ')}>\n      <Power ${pa.join(' ')}/>\n    </Host>`;
}

function layoutXml(l: DiskLayoutSpec): string {
  const attrs = [`name="${esc(l.name)}"`, `swap="${l.swapMiB}"`];
  if (l.rootMiB !== undefined) attrs.push(`root="${l.rootMiB}"`);
  const inner: string[] = [];
  const vg = l.volumeGroup;
  if (vg)
    inner.push(`      <VolumeGroup name="${esc(vg.name)}"${vg.sizeMiB !== undefined ? ` size="${vg.sizeMiB}"` : ''}/>`);
  if (l.raid1) inner.push(`      <Raid1 disks="${esc(l.raid1.join(' '))}"/>`);
  if (!inner.length) return `    <Layout ${attrs.join(' ')}/>`;
  return [`    <Layout ${attrs.join(' ')}>`, ...inner, '    </Layout>'].join('\n');
}

function templateXml(t: TemplateSpec): string {
  const attrs = [`name="${esc(t.name)}"`, `type="${t.type}"`];
  if (t.maxMemMiB !== undefined) attrs.push(`maxmem="${t.maxMemMiB}"`);
  if (t.maxVcpus !== undefined) attrs.push(`maxvcpus="${t.maxVcpus}"`);
  if (t.weight !== undefined) attrs.push(`weight="${t.weight}"`);
  const lines = [`    <Template ${attrs.join(' ')}>`];
  if (t.kernel) lines.push(`      <Kernel>${esc(t.kernel)}</Kernel>`);
  if (t.ramdisk) lines.push(`      <Ramdisk>${esc(t.ramdisk)}</Ramdisk>`);
  if (t.bootloader) lines.push(`      <Bootloader>${esc(t.bootloader)}</Bootloader>`);
  if (t.extra) lines.push(`      <Extra>${esc(t.extra)}</Extra>`);
  for (const d of t.disks) lines.push(`      ${diskXml(d)}`);
  lines.push(`      <Bridge>${esc(t.bridge)}</Bridge>`, '    </Template>');
  return lines.join('\n');
}

function diskXml(d: DiskSpec): string {
  if (d.pool && d.image)
    return `<Disk vdev="${d.vdev}" pool="${esc(d.pool)}" image="${esc(d.image)}"${d.clone ? ` clone="${d.clone}"` : ''} access="${d.access}"/>`;
  return `<Disk target="${esc(d.target)}" vdev="${d.vdev}" format="${d.format}" access="${d.access}"/>`;
}

function poolXml(p: PoolSpec): string {
  const attrs = [`name="${esc(p.name)}"`, `type="${p.type}"`];
  if (p.server) attrs.push(`server="${esc(p.server)}"`);
  if (p.export) attrs.push(`export="${esc(p.export)}"`);
  if (p.path) attrs.push(`path="${esc(p.path)}"`);
  if (p.vg) attrs.push(`vg="${esc(p.vg)}"`);
  if (p.thinPool) attrs.push(`thinpool="${esc(p.thinPool)}"`);
  if (p.hosts) attrs.push(`hosts="${esc(p.hosts.join(' '))}"`);
  return `    <Pool ${attrs.join(' ')}/>`;
}

function vmXml(vm: VmSpec, dom0: string): string {
  const lines = [
    `    <VM name="${esc(vm.name)}" config="${esc(vm.config)}">`,
    `      <DOM0>${esc(dom0)}</DOM0>`,
    `      <VCPUS>${vm.vcpus}</VCPUS>`,
    `      <HWADDR>${vm.hwaddr.toUpperCase()}</HWADDR>`,
    `      <IP>${esc(vm.ip)}</IP>`,
    `      <MEM>${vm.memMiB}</MEM>`,
  ];
  const p = vm.placement;
  const pa: string[] = [];
  if (p.pinned) pa.push('pinned="true"');
  if (p.antiAffinity !== undefined) pa.push(`antiAffinity="${esc(p.antiAffinity)}"`);
  if (p.affinity !== undefined) pa.push(`affinity="${esc(p.affinity)}"`);
  if (p.excludeHosts?.length) pa.push(`excludeHosts="${esc(p.excludeHosts.join(','))}"`);
  if (p.noRebalance) pa.push('rebalance="false"');
  if (p.priority) pa.push(`priority="${p.priority}"`);
  if (pa.length) lines.push(`      <Placement ${pa.join(' ')}/>`);
  lines.push('    </VM>');
  return lines.join('\n');
}

export function serializeSite(site: Site): string {
  const out = ['<?xml version="1.0" encoding="UTF-8"?>', '<XSMConfig>'];
  const declaredHosts = site.hosts.filter((h) => !h.implied);
  const layouts = site.layouts ?? [];
  if (declaredHosts.length || layouts.length)
    out.push('  <Hosts>', ...layouts.map(layoutXml), ...declaredHosts.map(hostXml), '  </Hosts>');
  if (site.pools?.length) out.push('  <Pools>', ...site.pools.map(poolXml), '  </Pools>');
  const declaredTemplates = site.templates.filter((t) => !t.implied);
  if (declaredTemplates.length) out.push('  <Templates>', ...declaredTemplates.map(templateXml), '  </Templates>');
  const hostByName = new Map(site.hosts.map((h) => [h.name, h]));
  const vmByName = new Map(site.vms.map((v) => [v.name, v]));
  for (const set of site.sets) {
    out.push(`  <Set name="${esc(set.name)}">`);
    if (set.owner !== undefined) out.push(`    <Owner>${esc(set.owner)}</Owner>`);
    for (const name of set.vms) {
      const vm = vmByName.get(name);
      if (!vm) continue;
      // A declared host is written by name; an implied one by the address its DOM0 gave (an IPv6 DOM0's
      // implied name is not an address, so writing the name back would change the host).
      const host = hostByName.get(vm.host);
      out.push(vmXml(vm, host?.implied ? host.address : (host?.name ?? vm.host)));
    }
    out.push('  </Set>');
  }
  out.push('</XSMConfig>', '');
  return out.join('\n');
}
