// Site files for integration tests, built as text like an operator would write them.
export interface VmLine {
  name: string;
  host: string;
  mem: number;
  vcpus?: number;
  priority?: number;
  pinned?: boolean;
  /**
   * Template: `tiny` (default; grows live up to 2048 MiB / 4 vCPUs) or `fixed` (no live growth); any other
   * name is an xl config file on the Dom0 (`apache_svr` names /etc/xen/apache_svr.cfg).
   */
  config?: 'tiny' | 'fixed' | 'apache_svr' | 'mysql_svr' | (string & {});
}

/** Extra site file parts: <Pools> and more <Template>s (storage scenarios). */
export interface SiteExtras {
  pools?: string;
  templates?: string;
}

export interface HostLine {
  name: string;
  memMiB: number;
  cpus?: number;
  power?: { driver: string; address?: string; user?: string; passwordFile?: string; insecureTls?: boolean };
}

export function siteXml(hosts: HostLine[], vms: VmLine[], extras: SiteExtras = {}): string {
  const hostLines = hosts.map((h, i) => {
    const attrs = `name="${h.name}" address="10.77.0.${i + 1}" cpus="${h.cpus ?? 8}" memory="${h.memMiB}"`;
    if (!h.power) return `    <Host ${attrs}/>`;
    const p = h.power;
    const power = [
      `driver="${p.driver}"`,
      ...(p.address ? [`address="${p.address}"`] : []),
      ...(p.user ? [`user="${p.user}"`] : []),
      ...(p.passwordFile ? [`passwordFile="${p.passwordFile}"`] : []),
      ...(p.insecureTls ? ['insecureTls="true"'] : []),
    ];
    return `    <Host ${attrs}><Power ${power.join(' ')}/></Host>`;
  });
  const vmLines = vms.map((v, i) => {
    const mac = `00:16:3e:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
    const placement =
      v.priority !== undefined || v.pinned
        ? `<Placement${v.priority !== undefined ? ` priority="${v.priority}"` : ''}${v.pinned ? ' pinned="true"' : ''}/>`
        : '';
    return `    <VM name="${v.name}" config="${v.config ?? 'tiny'}"><DOM0>${v.host}</DOM0><VCPUS>${v.vcpus ?? 1}</VCPUS><HWADDR>${mac}</HWADDR><IP>DHCP</IP><MEM>${v.mem}</MEM>${placement}</VM>`;
  });
  return `<XSMConfig>
  <Hosts>
${hostLines.join('\n')}
  </Hosts>${extras.pools ? `\n${extras.pools}` : ''}
  <Templates>
    <Template name="tiny" type="pvh" maxmem="2048" maxvcpus="4"><Kernel>/srv/xen/kernels/vmlinuz</Kernel><Disk target="/srv/xen/disks/{vm}.img" vdev="xvda"/><Bridge>xenbr0</Bridge></Template><Template name="fixed" type="pvh"><Kernel>/srv/xen/kernels/vmlinuz</Kernel><Disk target="/srv/xen/disks/{vm}.img" vdev="xvda"/><Bridge>xenbr0</Bridge></Template>${extras.templates ? `\n${extras.templates}` : ''}
  </Templates>
  <Set name="test">
${vmLines.join('\n')}
  </Set>
</XSMConfig>
`;
}
