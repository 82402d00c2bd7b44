// The one interface every workflow uses to drive Xen on a host. Two implementations:
// XlHypervisor (real `xl`, locally or over SSH) and SimulatedXenHost (keeps real state, answers like xl).

/** xl's six state letters, decoded (see shared/reference/formats.md §1.1). */
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
}

/**
 * The size Xen holds for a domain: its targets where the driver knows them (a guest balloons and onlines
 * vCPUs at its own pace; on real Xen an 80m target settled at 82 MiB), else what it shows now.
 */
export function heldSize(d: DomainInfo): { memMiB: number; vcpus: number } {
  return { memMiB: d.targetMemMiB ?? d.memMiB, vcpus: d.targetVcpus ?? d.vcpus };
}

export interface HostInfo {
  host: string;
  totalMemMiB: number;
  freeMemMiB: number;
  nrCpus: number;
  xenVersion: string;
  scheduler: string;
}

/** A rendered xl.cfg for one domain (src/drivers/hypervisor/domain-config.ts renders it from a template + VM). */
export interface DomainConfig {
  name: string;
  /** The xl.cfg text, exactly as written to disk for `xl create`. */
  text: string;
}

/** Where a migration goes: the target host's name (for the simulator) and address (for `xl migrate`). */
export interface MigrationTarget {
  host: string;
  address: string;
}

export interface Hypervisor {
  readonly hostName: string;
  info(): Promise<HostInfo>;
  /** All domains including Domain-0 (domid 0). */
  list(): Promise<DomainInfo[]>;
  /** The domain or undefined when no domain has that name. */
  find(name: string): Promise<DomainInfo | undefined>;
  /** Writes the config file and runs `xl create`; refuses a duplicate name or a domain that does not fit. */
  create(config: DomainConfig): Promise<void>;
  /** Graceful shutdown, waiting up to timeoutMs, then destroy. */
  shutdown(name: string, timeoutMs: number): Promise<void>;
  destroy(name: string): Promise<void>;
  /** Balloon target, MiB (`xl mem-set NAME <MiB>m`); must be <= maxmem. */
  setMemory(name: string, memMiB: number): Promise<void>;
  /** `xl vcpu-set`; must be <= maxvcpus. */
  setVcpus(name: string, vcpus: number): Promise<void>;
  /** Live migration (`xl migrate`); on success the domain runs on the target and is gone here. */
  migrate(name: string, target: MigrationTarget): Promise<void>;
  /** Scheduler weight (credit or credit2, whichever the host runs). */
  setWeight(name: string, weight: number): Promise<void>;
}

/**
 * A refusal real Xen would give that retrying cannot fix (no memory, unknown domain, over maxmem).
 * Workflows turn it into a permanent job failure; anything else is treated as transient.
 */
export class HypervisorRefusal extends Error {
  constructor(
    readonly host: string,
    message: string,
  ) {
    super(`${host}: ${message}`);
    this.name = 'HypervisorRefusal';
  }
}
