// What a VM's `config` names when no <Template> of that name is declared (the paper's format): an xl config
// file the operator keeps on the Dom0, `NAME.cfg` in the host agent's config directory (default /etc/xen).
// XSM runs it as written, with the VM's own name, MEM, VCPUS, HWADDR and IP set over it
// (src/site/xl-config.ts), and the planner refuses a VM whose file is missing on its host.

import type { TemplateSpec } from './model.ts';

export function configFileTemplate(name: string): TemplateSpec {
  return {
    name,
    // Unused: the config file says what the guest is.
    type: 'pvh',
    disks: [],
    bridge: 'xenbr0',
    implied: true,
    configFile: `${name}.cfg`,
  };
}
