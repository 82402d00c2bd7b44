// The template used for a `config` name when a file declares no <Templates> (the paper's format): a PVH
// guest booted directly from a kernel on the Dom0, one disk image per VM, on xenbr0.

import type { TemplateSpec } from './model.ts';

export function impliedTemplate(name: string): TemplateSpec {
  return {
    name,
    type: 'pvh',
    kernel: '/srv/xen/kernels/vmlinuz',
    ramdisk: '/srv/xen/kernels/initrd.img',
    extra: 'console=hvc0 root=/dev/xvda1 ro',
    disks: [{ target: '/srv/xen/disks/{vm}.img', vdev: 'xvda', format: 'raw', access: 'rw' }],
    bridge: 'xenbr0',
    implied: true,
  };
}
