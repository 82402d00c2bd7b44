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
  if (v === 'ff:ff:ff:ff:ff:ff')
    return { error: `${v} is the broadcast MAC; a VM or host needs its own unicast address` };
  if (parseInt(v.slice(0, 2), 16) & 1)
    return { error: `${v} is a multicast MAC; a VM or host needs a unicast address (even first octet)` };
  if (v === '00:00:00:00:00:00')
    return { error: `${v} is the all-zero MAC, which no network card owns; give a real unicast address` };
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

/**
 * One spelling per address, so duplicate checks see `10.0.0.50` and `::ffff:10.0.0.50`, or `2001:db8::1` and
 * `2001:DB8:0::1`, as the same address. IPv6 is lower-cased and zero-compressed (RFC 5952, as WHATWG URL
 * serialises it); an IPv4-mapped IPv6 address becomes its IPv4 address. Anything else comes back unchanged.
 */
export function canonicalIp(v: string): string {
  if (!isIPv6(v)) return v;
  const host = new URL(`http://[${v}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (!mapped) return host;
  const hi = parseInt(mapped[1]!, 16);
  const lo = parseInt(mapped[2]!, 16);
  return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.');
}

/** Addresses that name no single machine: a VM or a Dom0 given one would be unreachable or hijack traffic. */
function notAHostAddress(v: string): string | undefined {
  const c = canonicalIp(v);
  if (c === '0.0.0.0' || c === '::') return `${c} is an unspecified address, which names no machine`;
  if (c === '255.255.255.255') return `${c} is a broadcast address, which names no single machine`;
  if (isIPv4(c) && Number(c.split('.')[0]) >= 224 && Number(c.split('.')[0]) <= 239)
    return `${c} is a multicast address, which names no single machine`;
  if (isIPv6(c) && c.startsWith('ff')) return `${c} is a multicast address, which names no single machine`;
  return undefined;
}

/** Text of digits and dots only reads as an IPv4 address to a person, so it must be a valid one. */
function ipv4Lookalike(v: string, what: string): string | undefined {
  if (!/^[0-9.]+$/.test(v) || isIPv4(v)) return undefined;
  return `${what} ${JSON.stringify(v.slice(0, 60))} looks like an IPv4 address but is not one: give four numbers 0-255 without leading zeros (e.g. 192.168.5.31), or a host name that starts with a letter`;
}

export function checkVmIp(value: string | undefined): string | undefined {
  if (value === undefined || value.trim() === '') return 'IP is missing (use DHCP or a static address)';
  const v = value.trim();
  if (v === 'DHCP') return undefined;
  if (isIPv4(v) || isIPv6(v)) {
    const why = notAHostAddress(v);
    return why ? `static IP ${why}; give the VM its own unicast address, or DHCP` : undefined;
  }
  return `${JSON.stringify(v.slice(0, 60))} is neither DHCP nor an IPv4/IPv6 address`;
}

/** A Dom0 address: an IP, or a DNS-safe host name. */
export function checkAddress(value: string | undefined, what: string): string | undefined {
  if (value === undefined || value.trim() === '') return `${what} is missing`;
  const v = value.trim();
  if (isIPv4(v) || isIPv6(v)) {
    const why = notAHostAddress(v);
    return why ? `${what} ${why}; give the host's own address` : undefined;
  }
  const lookalike = ipv4Lookalike(v, what);
  if (lookalike) return lookalike;
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
