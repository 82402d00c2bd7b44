// A domain as a hypervisor reports it: what the planner and the capacity rules read from observed state,
// and what every hypervisor driver (real `xl` or the simulator) produces. Kept here, below the drivers, so
// planning never depends on a driver.

/** xl's six state letters (`r b p s c d` in `xl list`), decoded. */
export type DomainState = 'running' | 'blocked' | 'paused' | 'shutdown' | 'crashed' | 'dying';

export interface DomainInfo {
  name: string;
  domid: number;
  state: DomainState;
  /** Memory the domain holds now, MiB (`xl list`); a ballooning guest converges on its target. */
  memMiB: number;
  /**
   * The balloon target Xen holds (`xl list -l` target_memkb) when the driver knows it. After
   * `xl mem-set` it is exact at once, while the guest may settle a little above it (80m -> 82 MiB
   * recorded on real Xen 4.17).
   */
  targetMemMiB?: number;
  /** Ceiling for live growth (maxmem), MiB. */
  maxMemMiB: number;
  /** vCPUs online. */
  vcpus: number;
  /** vCPUs Xen makes available (`xl list -l` avail_vcpus) when known; the guest onlines them later. */
  targetVcpus?: number;
  /** vCPUs the domain was created with (maxvcpus). */
  maxVcpus: number;
  /**
   * The toolstack gave no ceilings for this domain (`xl list` showed it, `xl list -l` did not: a domain
   * being built or torn down, seen on real Xen), so maxMemMiB/maxVcpus are only its current size.
   */
  limitsUnknown?: true;
  /** Total CPU time consumed, seconds. */
  cpuTimeSec: number;
  /** Scheduler weight when known. */
  weight?: number;
  /** The domain's network interfaces as Xen holds them (`xl list -l` nics), when the driver knows them. */
  nics?: DomainNic[];
}

/** One virtual NIC of a running domain. */
export interface DomainNic {
  mac: string;
  /** The vif's `ip=`, when the config gave one. */
  ip?: string;
}

/**
 * The size Xen holds for a domain: its targets where the driver knows them (a guest balloons and onlines
 * vCPUs at its own pace; on real Xen an 80m target settled at 82 MiB), else what it shows now.
 */
export function heldSize(d: DomainInfo): { memMiB: number; vcpus: number } {
  return { memMiB: d.targetMemMiB ?? d.memMiB, vcpus: d.targetVcpus ?? d.vcpus };
}
