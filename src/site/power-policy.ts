// Where a <Power> element may point. A BMC password is a root-equivalent secret and the BMC address is where
// XSM sends it, so both are confined: password files live in one secrets directory, QMP sockets in one
// directory, and BMC addresses must be remote, routable hosts (Redfish over https). The checks here are
// lexical, for site-file validation; src/drivers/power/secrets.ts repeats them on the real files at use.

import { isAbsolute, resolve, sep } from 'node:path';
import net from 'node:net';
import { checkAddress, checkPath } from './validate.ts';

export interface PowerPolicy {
  /** Every passwordFile must resolve inside this directory (XSM_SECRETS_DIR, default /etc/xsm/secrets). */
  secretsDir: string;
  /** Every QMP socket must resolve inside this directory (XSM_QMP_DIR, default /run/xsm/qmp). */
  qmpDir: string;
  /** Lab only (XSM_POWER_ALLOW_LOCAL=1): BMCs on loopback, link-local, unspecified or multicast addresses. */
  allowLocal: boolean;
}

export const DEFAULT_SECRETS_DIR = '/etc/xsm/secrets';
export const DEFAULT_QMP_DIR = '/run/xsm/qmp';

/** The policy from XSM_SECRETS_DIR, XSM_QMP_DIR and XSM_POWER_ALLOW_LOCAL; malformed values are refused. */
export function powerPolicyFromEnv(env: NodeJS.ProcessEnv = process.env): PowerPolicy {
  const dir = (name: string, fallback: string): string => {
    const v = env[name];
    if (v === undefined || v === '') return fallback;
    if (!isAbsolute(v)) throw new Error(`${name}=${JSON.stringify(v)} must be an absolute directory path`);
    return resolve(v);
  };
  const local = env.XSM_POWER_ALLOW_LOCAL;
  if (local !== undefined && local !== '' && local !== '0' && local !== '1')
    throw new Error(`XSM_POWER_ALLOW_LOCAL=${JSON.stringify(local)} must be 1 (lab only) or 0`);
  return {
    secretsDir: dir('XSM_SECRETS_DIR', DEFAULT_SECRETS_DIR),
    qmpDir: dir('XSM_QMP_DIR', DEFAULT_QMP_DIR),
    allowLocal: local === '1',
  };
}

/** True when `path` (already resolved, absolute) is strictly inside `dir`. */
export function isInside(path: string, dir: string): boolean {
  const d = dir.endsWith(sep) ? dir : dir + sep;
  return path.startsWith(d) && path.length > d.length;
}

/** A passwordFile value: an absolute path inside the secrets directory (symlinks are resolved at use). */
export function checkPasswordFilePath(value: string, policy: PowerPolicy): string | undefined {
  const e = checkPath(value, 'passwordFile');
  if (e) return e;
  if (!isInside(resolve(value), policy.secretsDir))
    return `passwordFile ${value} is outside the secrets directory ${policy.secretsDir}; put BMC passwords there (chmod 600; XSM_SECRETS_DIR sets the directory)`;
  return undefined;
}

/** A QMP socket path: absolute, inside the QMP directory. */
export function checkQmpPath(value: string, policy: PowerPolicy): string | undefined {
  const e = checkPath(value, 'QMP socket path');
  if (e) return e;
  if (!isInside(resolve(value), policy.qmpDir))
    return `QMP socket ${value} is outside the QMP directory ${policy.qmpDir} (XSM_QMP_DIR sets it)`;
  return undefined;
}

const local = new net.BlockList();
const LOCAL_RANGES: [string, number, 'ipv4' | 'ipv6', string][] = [
  ['127.0.0.0', 8, 'ipv4', 'loopback'],
  ['169.254.0.0', 16, 'ipv4', 'link-local'],
  ['0.0.0.0', 8, 'ipv4', 'unspecified'],
  ['224.0.0.0', 4, 'ipv4', 'multicast'],
  ['255.255.255.255', 32, 'ipv4', 'broadcast'],
  ['::1', 128, 'ipv6', 'loopback'],
  ['::', 128, 'ipv6', 'unspecified'],
  ['fe80::', 10, 'ipv6', 'link-local'],
  ['ff00::', 8, 'ipv6', 'multicast'],
];
const ranges = LOCAL_RANGES.map(([a, bits, type, what]) => {
  const one = new net.BlockList();
  one.addSubnet(a, bits, type);
  local.addSubnet(a, bits, type);
  return { one, what, cidr: `${a}/${bits}` };
});

/** Why an IP address or host name is local (loopback, link-local, unspecified, multicast), or undefined. */
export function localAddressKind(host: string): string | undefined {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return 'loopback';
  const type = net.isIPv4(h) ? 'ipv4' : net.isIPv6(h) ? 'ipv6' : undefined;
  if (!type || !local.check(h, type)) return undefined;
  return ranges.find((r) => r.one.check(h, type))?.what;
}

/** The refusal for a local BMC address, unless the lab setting allows it. */
export function checkRemote(host: string, policy: PowerPolicy, what: string): string | undefined {
  if (policy.allowLocal) return undefined;
  const kind = localAddressKind(host);
  if (!kind) return undefined;
  return `${what} ${host} is ${/^[aeiou]/.test(kind) ? 'an' : 'a'} ${kind} address; a BMC must be a remote host (XSM_POWER_ALLOW_LOCAL=1 allows this in a lab only)`;
}

/** A Redfish BMC as a URL: https only, no credentials, path, query or fragment. */
export function redfishUrl(value: string): { url?: URL; error?: string } {
  const v = value.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(v) ? v : net.isIPv6(v) ? `https://[${v}]` : `https://${v}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return { error: `Redfish address ${JSON.stringify(v.slice(0, 80))} is neither a host name nor an https URL` };
  }
  if (url.protocol === 'http:')
    return { error: `Redfish address ${v} uses http, which would send the BMC password in clear; use https` };
  if (url.protocol !== 'https:') return { error: `Redfish address ${v} must be an https URL or a host name` };
  if (url.username || url.password)
    return { error: 'Redfish address must not carry credentials; give user and passwordFile' };
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash)
    return { error: `Redfish address ${v} must be https://HOST[:PORT] (the service root /redfish/v1/ is implied)` };
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const e = checkAddress(host, 'Redfish host');
  if (e) return { error: e };
  return { url };
}

/**
 * The BMC address of a <Power> element, checked for its driver: ipmi a host name or IP; redfish an https
 * URL or host; qmp a socket path in the QMP directory. Local addresses are refused unless the policy allows.
 */
export function checkPowerAddress(driver: string, address: string, policy: PowerPolicy): string | undefined {
  if (driver === 'qmp') return checkQmpPath(address, policy);
  if (driver === 'ipmi') {
    const v = address.trim();
    const e = checkAddress(v, 'IPMI address');
    if (e) return `${e} (ipmitool takes a host name or IP: no scheme, port or path)`;
    return checkRemote(v, policy, 'IPMI address');
  }
  if (driver === 'redfish') {
    const r = redfishUrl(address);
    if (r.error) return r.error;
    return checkRemote(r.url!.hostname.replace(/^\[|\]$/g, ''), policy, 'Redfish host');
  }
  return undefined;
}
