// The xl config files the paper's site names (Figure 3: config="apache_svr" for vm1-vm3, "mysql_svr" for
// vm4), as an operator keeps them in /etc/xen on every Dom0 that may run those VMs. The demo writes them
// onto its simulated Dom0s; XSM runs them with each VM's own name, MEM, VCPUS and HWADDR set over them.

export const PAPER_CONFIG_FILES: readonly { name: string; text: string }[] = [
  {
    name: 'apache_svr.cfg',
    text: `# Web tier of the paper's site: a small PVH guest.
name    = "apache_svr"
type    = "pvh"
kernel  = "/srv/xen/kernels/vmlinuz"
ramdisk = "/srv/xen/kernels/initrd.img"
extra   = "console=hvc0 root=/dev/xvda1 ro"
memory  = 96
vcpus   = 1
vif     = [ 'bridge=xenbr0' ]
disk    = [ 'format=raw, vdev=xvda, access=rw, target=/srv/xen/disks/apache-root.img' ]
on_crash = "restart"
`,
  },
  {
    name: 'mysql_svr.cfg',
    text: `# Database of the paper's site: PV, booted by pygrub, its data on an LVM volume; no live memory growth.
name       = "mysql_svr"
type       = "pv"
bootloader = "pygrub"
memory     = 128
vcpus      = 2
maxvcpus   = 4
cpu_weight = 512
vif        = [ 'bridge=xenbr0' ]
disk       = [ 'phy:/dev/vg0/mysql-root,xvda,w', 'phy:/dev/vg0/mysql-data,xvdb,w' ]
on_crash   = "restart"
`,
  },
];
