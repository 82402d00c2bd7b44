// The validated site: the typed form of a site file that every other part of XSM works with.
// Untrusted XML is parsed once (src/site/parse.ts) into these types; nothing inward re-reads XML.

/** Where an element sits in its source file, so every error can name `file:line:col`. */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
}

export type PowerDriverName = 'ipmi' | 'redfish' | 'qmp' | 'manual';

/** How XSM switches a host on and off (and fences it). Secrets are never inline: a file path or env name. */
export interface PowerSpec {
  driver: PowerDriverName;
  /** BMC address (ipmi, redfish: host or URL), or the QMP unix socket path (qmp). Absent for manual. */
  address?: string;
  user?: string;
  /** File holding the BMC password (read at use, never stored in Redis), inside XSM_SECRETS_DIR. */
  passwordFile?: string;
  /** Redfish only: do not verify the BMC's TLS certificate (an admin's choice; see docs/site-file.md). */
  insecureTls?: boolean;
}

/** One Dom0 in the inventory. `address` is what a VM's <DOM0> names (the paper uses the Dom0 IP). */
export interface HostSpec {
  name: string;
  address: string;
  bootMac?: string;
  power?: PowerSpec;
  /** Physical CPUs guests may use. */
  cpus: number;
  /** Memory guests may use, MiB (what is left after Dom0). */
  memoryMiB: number;
  /** A host in maintenance receives no new VMs and is drained by the rebalancer. */
  maintenance: boolean;
  /** The <Layout> its disks get at deploy (its own layout="", else <Hosts layout="">); absent: the default. */
  layout?: string;
  /**
   * True when the host was not declared in the file but inferred from a paper-format <DOM0> address:
   * its capacity is unknown (cpus/memoryMiB are 0) and capacity checks are skipped for it.
   */
  implied: boolean;
  pos?: SourcePos;
}

/**
 * A Dom0 disk layout (<Hosts><Layout>), for one host or a class of hosts naming it: GPT with a BIOS boot
 * partition for GRUB, swap, the root file system (the image's), optionally a partition holding an LVM
 * volume group for VM disks, optionally all of it mirrored (RAID1) over two disks.
 */
export interface DiskLayoutSpec {
  name: string;
  swapMiB: number;
  /** Root partition size; absent: the rest of the disk (or, with a volume group, 20 GiB). */
  rootMiB?: number;
  /** The root file system: the image's (the Dom0 images are ext4). */
  fs: 'ext4';
  volumeGroup?: { name: string; /** absent: the rest of the disk */ sizeMiB?: number };
  /** RAID1 over these two disks (md, metadata 1.0 so each half is a plain partition to GRUB). */
  raid1?: [string, string];
  pos?: SourcePos;
}

export interface DiskSpec {
  /** Path or device; `{vm}` is replaced by the VM name when the domain config is rendered. */
  target: string;
  vdev: string;
  format: 'raw' | 'qcow2' | 'vhd';
  access: 'rw' | 'ro';
  /** The storage pool XSM provisions the disk in (src/site/storage.ts); absent: a path XSM does not manage. */
  pool?: string;
  /** The base image the disk is made from: a file in the pool's directory, or an LV in its volume group. */
  image?: string;
  /** How the disk is made from the image: a copy (file, nfs), a qcow2 overlay (file, nfs) or a thin snapshot (lvm). */
  clone?: DiskClone;
}

export type DiskClone = 'copy' | 'overlay' | 'snapshot';
export type PoolType = 'file' | 'lvm' | 'nfs';

/**
 * Where VM disks live. A `file` pool is a directory and an `lvm` pool a volume group on each host that has it
 * (each host its own: a disk there is seen by that host only); an `nfs` pool is one export, mounted at `path` by
 * every host that lists it, so its disks are seen by all of them.
 */
export interface PoolSpec {
  name: string;
  type: PoolType;
  /** file: the directory; nfs: where the export is mounted on each host. Absent for lvm. */
  path?: string;
  /** lvm: the volume group. */
  vg?: string;
  /** lvm: the thin pool LV in the volume group, when there is one (snapshots are then thin). */
  thinPool?: string;
  /** nfs: the server's address and its export path. */
  server?: string;
  export?: string;
  /** Hosts that have (file, lvm) or mount (nfs) the pool; absent: every host. */
  hosts?: string[];
  pos?: SourcePos;
}

/** What a VM's `config` attribute names: the parts of a real xl.cfg that are shared by many VMs. */
export interface TemplateSpec {
  name: string;
  type: 'pv' | 'pvh' | 'hvm';
  kernel?: string;
  ramdisk?: string;
  bootloader?: string;
  /** Kernel command line additions (xl.cfg `extra`). */
  extra?: string;
  disks: DiskSpec[];
  bridge: string;
  /** Ceiling for live memory growth (xl.cfg `maxmem`), MiB. Absent: the VM's MEM (no live growth). */
  maxMemMiB?: number;
  /** Ceiling for live vCPU growth (xl.cfg `maxvcpus`). Absent: the VM's VCPUS (no live growth). */
  maxVcpus?: number;
  /** Credit scheduler weight (1..65535, Xen default 256). */
  weight?: number;
  /** True when the file did not declare this template: `config` names an xl config file on the Dom0. */
  implied: boolean;
  /**
   * Set when `config` names no declared template (the paper's `config="apache_svr"`): the file
   * (`apache_svr.cfg`) in the config directory of the VM's Dom0 is the domain config, run as written with
   * the VM's name, MEM, VCPUS, HWADDR and IP set over it. The other fields are then unused.
   */
  configFile?: string;
  pos?: SourcePos;
}

/** Per-VM placement hints, all optional in the file. */
export interface PlacementHints {
  /** Never moved by the rebalancer or failover placement; stays on its DOM0. */
  pinned: boolean;
  /** VMs sharing a group should not share a host. */
  antiAffinity?: string;
  /** VMs sharing a group are kept together on one host (below anti-affinity: src/rebalance/rules.ts). */
  affinity?: string;
  /** Hosts this VM must never run on (host names), e.g. for licensing or hardware it needs. */
  excludeHosts?: string[];
  /** Excluded from rebalancing (but restarted elsewhere on host failure, unlike pinned). */
  noRebalance: boolean;
  /** Failover restart order: higher first. Default 0. */
  priority: number;
}

export interface VmSpec {
  name: string;
  /** Name of the <Set> it belongs to. */
  set: string;
  /** Template name (`config` attribute). */
  config: string;
  /** Host name (resolved from the <DOM0> text, which may be the host's name or address). */
  host: string;
  vcpus: number;
  memMiB: number;
  /** MAC, normalised to lower case colon form. */
  hwaddr: string;
  /** 'DHCP' or a static IPv4/IPv6 address. */
  ip: string;
  placement: PlacementHints;
  pos?: SourcePos;
}

export interface SetSpec {
  name: string;
  owner?: string;
  /** VM names in file order. */
  vms: string[];
  pos?: SourcePos;
}

export interface Site {
  hosts: HostSpec[];
  /** Disk layouts declared in <Hosts>; absent or empty: every host gets the deploy worker's default. */
  layouts?: DiskLayoutSpec[];
  templates: TemplateSpec[];
  /** Storage pools (<Pools>); absent when the file declares none (the paper's files). */
  pools?: PoolSpec[];
  sets: SetSpec[];
  /** All VMs of all sets, file order. Names are unique site-wide. */
  vms: VmSpec[];
}

/** One problem found in a site file. `toString` form: `file:line:col: message`. */
export interface SiteIssue {
  file: string;
  line: number;
  col: number;
  /** The element (and attribute) the problem is about, e.g. `VM[name=vm3]/MEM`. */
  element: string;
  message: string;
}

export function formatIssue(issue: SiteIssue): string {
  return `${issue.file}:${issue.line}:${issue.col}: ${issue.element}: ${issue.message}`;
}

export type LoadResult =
  { ok: true; site: Site; warnings: SiteIssue[] } | { ok: false; errors: SiteIssue[]; warnings: SiteIssue[] };

/** Indexes a site by name for the lookups the planner and workers do in hot loops. */
export interface SiteIndex {
  hosts: Map<string, HostSpec>;
  templates: Map<string, TemplateSpec>;
  vms: Map<string, VmSpec>;
}

export function indexSite(site: Site): SiteIndex {
  return {
    hosts: new Map(site.hosts.map((h) => [h.name, h])),
    templates: new Map(site.templates.map((t) => [t.name, t])),
    vms: new Map(site.vms.map((v) => [v.name, v])),
  };
}
