// Value checks for site-file fields. Each returns a message saying what is wrong and what is expected,
// or undefined when the value is fine. Strict on purpose: these values reach `xl`, file paths and Redis keys.

import net from 'node:net';

/** Host, template, set, VM and group names. */
export const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/** Names that would collide with JavaScript object internals if anyone ever keyed a plain object by them. */
const RESERVED = new Set(['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString', 'valueOf']);

export function checkName(value: string | undefined, what: string): string | undefined {
  if (value === undefined || value === '') return `${what} is missing; give one (letters, digits, '.', '_' or '-')`;
  if (!SAFE_NAME.test(value) || RESERVED.has(value)) {
    return `${what} ${JSON.stringify(value.slice(0, 80))} is not a safe name: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`;
  }
  if (value === '.' || value === '..' || value.includes('..'))
    return `${what} ${JSON.stringify(value)} must not contain '..'`;
  return undefined;
}

/** Decimal integer only: no sign, no exponent, no hex, no fraction. */
export function parseInteger(
  value: string | undefined,
  what: string,
  min: number,
  max: number,
): { value?: number; error?: string } {
  if (value === undefined || value.trim() === '')
    return { error: `${what} is missing; give a whole number ${min}..${max}` };
  const v = value.trim();
  if (!/^\d{1,12}$/.test(v))
    return { error: `${what} ${JSON.stringify(v.slice(0, 40))} is not a whole decimal number` };
  const n = Number(v);
  if (n < min || n > max) return { error: `${what} ${n} is out of range (${min}..${max})` };
  return { value: n };
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export function normaliseMac(value: string | undefined): { value?: string; error?: string } {
  if (value === undefined || value.trim() === '') return { error: 'MAC address is missing' };
  const v = value.trim().toLowerCase().replace(/-/g, ':');
  if (!MAC.test(v))
    return {
      error: `${JSON.stringify(value.slice(0, 40))} is not a MAC address (six hex octets, e.g. 00:16:3e:00:00:01)`,
    };
  if (parseInt(v.slice(0, 2), 16) & 1)
    return { error: `${v} is a multicast MAC; a VM or host needs a unicast address (even first octet)` };
  return { value: v };
}

/** Dotted quad, no leading zeros (node:net is strict about that). */
export function isIPv4(v: string): boolean {
  return net.isIPv4(v);
}

/** Plain IPv6 (also with an embedded IPv4 tail); zone ids (`%eth0`) are not addresses a VM can own. */
export function isIPv6(v: string): boolean {
  return v.length <= 45 && !v.includes('%') && net.isIPv6(v);
}

export function checkVmIp(value: string | undefined): string | undefined {
  if (value === undefined || value.trim() === '') return 'IP is missing (use DHCP or a static address)';
  const v = value.trim();
  if (v === 'DHCP' || isIPv4(v) || isIPv6(v)) return undefined;
  return `${JSON.stringify(v.slice(0, 60))} is neither DHCP nor an IPv4/IPv6 address`;
}

/** A Dom0 address: an IP, or a DNS-safe host name. */
export function checkAddress(value: string | undefined, what: string): string | undefined {
  if (value === undefined || value.trim() === '') return `${what} is missing`;
  const v = value.trim();
  if (isIPv4(v) || isIPv6(v)) return undefined;
  if (
    /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(v)
  )
    return undefined;
  return `${what} ${JSON.stringify(v.slice(0, 60))} is neither an IP address nor a host name`;
}

export function parseBool(
  value: string | undefined,
  what: string,
  fallback: boolean,
): { value: boolean; error?: string } {
  if (value === undefined) return { value: fallback };
  const v = value.trim().toLowerCase();
  if (v === 'true' || v === 'yes' || v === '1') return { value: true };
  if (v === 'false' || v === 'no' || v === '0') return { value: false };
  return { value: fallback, error: `${what} ${JSON.stringify(value.slice(0, 20))} must be true or false` };
}

/** Paths that end up inside quoted xl.cfg values: absolute, no quotes, commas or control characters. */
export function checkPath(value: string | undefined, what: string): string | undefined {
  if (value === undefined || value.trim() === '') return `${what} is missing`;
  if (!value.startsWith('/')) return `${what} ${JSON.stringify(value.slice(0, 80))} must be an absolute path`;
  if (/["'\\,=\x00-\x1f\x7f]/.test(value))
    return `${what} must not contain quotes, commas, '=', backslashes or control characters`;
  if (value.split('/').includes('..')) return `${what} must not contain '..'`;
  return undefined;
}

/** Free text that is written into a quoted xl.cfg string (kernel extra arguments). */
export function checkConfigText(value: string, what: string): string | undefined {
  if (/["\\\x00-\x1f\x7f]/.test(value))
    return `${what} must not contain double quotes, backslashes or control characters`;
  if (value.length > 1024) return `${what} is longer than 1024 characters`;
  return undefined;
}
