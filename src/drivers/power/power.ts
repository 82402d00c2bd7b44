// Power control of a bare host: switching it on for PXE, off for fencing. Drivers: ipmitool, Redfish,
// QEMU QMP (the test lab) and manual (an operator confirms).

export type PowerState = 'on' | 'off' | 'unknown';

export interface PowerControl {
  /** For logs: "ipmi 10.0.0.201", "qmp /run/lab/node1.qmp". */
  readonly describe: string;
  status(): Promise<PowerState>;
  on(): Promise<void>;
  /** Hard off. Fencing relies on this: it must not return until the host is off, or throw. */
  off(): Promise<void>;
  /** Next boot from the network (one shot). */
  bootFromNetwork(): Promise<void>;
}
