// The one interface every workflow uses to drive Xen on a host. Two implementations:
// XlHypervisor (real `xl`, locally or over SSH) and SimulatedXenHost (keeps real state, answers like xl).

// A running domain as XSM models it (what `xl list` shows) lives with the site model, which plans with it;
// drivers produce it.
import type { DomainInfo } from '../../site/domain.ts';
import type { ConfigFileInfo } from '../../site/observed.ts';
export { heldSize, type DomainInfo, type DomainState } from '../../site/domain.ts';

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
  /**
   * Graceful shutdown, waiting up to timeoutMs, then destroy. With `domid`, only that instance of the domain:
   * `xl shutdown DOMID`, so a domain of the same name started since (by a retry that took the job over, say)
   * is left running, and an instance already gone is nothing to stop, as when the name is gone.
   */
  shutdown(name: string, timeoutMs: number, domid?: number): Promise<void>;
  destroy(name: string): Promise<void>;
  /** Balloon target, MiB (`xl mem-set NAME <MiB>m`); must be <= maxmem. */
  setMemory(name: string, memMiB: number): Promise<void>;
  /** `xl vcpu-set`; must be <= maxvcpus. */
  setVcpus(name: string, vcpus: number): Promise<void>;
  /** Live migration (`xl migrate`); on success the domain runs on the target and is gone here. */
  migrate(name: string, target: MigrationTarget): Promise<void>;
  /** Scheduler weight (credit or credit2, whichever the host runs). */
  setWeight(name: string, weight: number): Promise<void>;
  /** The operator's xl config files in this Dom0's config directory (`*.cfg`, not its subdirectories). */
  configFiles(): Promise<ConfigFiles>;
  /** One of those files' text by its name (`apache_svr.cfg`), or undefined when it is not there. */
  readConfigFile(name: string): Promise<string | undefined>;
}

/** What a Dom0's config directory holds. */
export interface ConfigFiles {
  dir: string;
  files: ConfigFileInfo[];
}

/** A config file name XSM reads: `NAME.cfg` in the directory itself, never a path out of it. */
export function isConfigFileName(name: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}\.cfg$/.test(name) && !name.includes('..');
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
