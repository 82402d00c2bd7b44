// Bearer-token auth: every token names a person or system (its identity), a role and groups. viewer reads;
// operator also submits, applies and acts on VMs and jobs, within the Sets it owns (src/api/ownership.ts);
// admin does everything, including hosts, templates, power and the queue dashboard. Tokens come from
// XSM_TOKENS ("token:role[:name[:group+group]]", comma separated) or XSM_TOKENS_FILE (lines
// "TOKEN ROLE [NAME [GROUP,GROUP]]", where TOKEN may be "sha256:HEX" so the file holds no usable secret),
// never from Redis, so a Redis compromise does not hand out API access. The file is re-read on SIGHUP.

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface Principal {
  /** Who: recorded as the author of versions and in the audit log. */
  name: string;
  role: Role;
  /** Groups the identity belongs to: a Set whose <Owner> is one of them is theirs to change. */
  groups: string[];
}

export interface TokenSpec {
  /** The token itself, or `sha256:HEX` of it. */
  token: string;
  role: Role;
  name?: string;
  groups?: string[];
}

export function roleAllows(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

interface TokenEntry {
  digest: Buffer;
  principal: Principal;
}

export class TokenTable {
  private entries: TokenEntry[];
  constructor(tokens: TokenSpec[]) {
    this.entries = TokenTable.build(tokens);
  }
  private static build(tokens: TokenSpec[]): TokenEntry[] {
    return tokens.map((t, i) => {
      const hashed = /^sha256:([0-9a-f]{64})$/i.exec(t.token);
      if (!hashed && t.token.startsWith('sha256:'))
        throw new Error(`API token #${i + 1} (${t.name ?? t.role}): sha256: must be followed by 64 hex digits`);
      if (!hashed && t.token.length < 16)
        throw new Error(
          `API token #${i + 1} (${t.name ?? t.role}) is shorter than 16 characters; use e.g. \`openssl rand -hex 24\``,
        );
      return {
        digest: hashed ? Buffer.from(hashed[1]!, 'hex') : digest(t.token),
        principal: { name: t.name ?? `${t.role}-${i + 1}`, role: t.role, groups: t.groups ?? [] },
      };
    });
  }
  /** Swaps in another table's tokens at once (SIGHUP): requests in flight keep the identity they had. */
  replaceWith(other: TokenTable): void {
    this.entries = other.entries;
  }
  get size(): number {
    return this.entries.length;
  }
  /** Constant-time over every entry, so timing does not tell which token prefix matched. */
  lookup(token: string): Principal | undefined {
    return this.lookupDigest(digest(token));
  }
  /**
   * By the token's SHA-256: what a browser session keeps instead of the token, so a session dies with its
   * token (revoked on SIGHUP) and Redis never holds a usable token.
   */
  lookupDigest(d: Buffer): Principal | undefined {
    if (d.length !== 32) return undefined;
    let found: Principal | undefined;
    for (const e of this.entries) if (timingSafeEqual(e.digest, d)) found = e.principal;
    return found;
  }
}

export function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function parseRole(s: string, where: string): Role {
  if ((ROLES as readonly string[]).includes(s)) return s as Role;
  throw new Error(`${where}: unknown role "${s}"; use viewer, operator or admin`);
}

/** Identity and group names: what a Set's <Owner> may say (an e-mail address is fine). */
const IDENTITY = /^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;

function identity(value: string, what: string, where: string): string {
  if (!IDENTITY.test(value) || value.startsWith('system:'))
    throw new Error(`${where}: ${what} "${value.slice(0, 60)}" must be 1-128 letters, digits or . _ @ + -`);
  return value;
}

function groupList(value: string | undefined, sep: string, where: string): string[] {
  return (value ?? '')
    .split(sep)
    .filter(Boolean)
    .map((g) => identity(g, 'group', where));
}

export function tokensFromEnv(env: NodeJS.ProcessEnv = process.env): TokenTable {
  const out: TokenSpec[] = [];
  if (env.XSM_TOKENS) {
    env.XSM_TOKENS.split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .forEach((entry, i) => {
        const where = `XSM_TOKENS entry #${i + 1}`;
        const [token, role, name, groups, ...rest] = entry.split(':');
        if (!token || !role || rest.length) throw new Error(`${where}: expected token:role[:name[:group+group]]`);
        out.push({
          token,
          role: parseRole(role, where),
          ...(name ? { name: identity(name, 'name', where) } : {}),
          groups: groupList(groups, '+', where),
        });
      });
  }
  if (env.XSM_TOKENS_FILE) {
    readFileSync(env.XSM_TOKENS_FILE, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        const l = line.replace(/#.*/, '').trim();
        if (!l) return;
        const where = `${env.XSM_TOKENS_FILE}:${i + 1}`;
        const [token, role, name, groups, ...rest] = l.split(/\s+/);
        if (!token || !role || rest.length) throw new Error(`${where}: expected "TOKEN ROLE [NAME [GROUP,GROUP]]"`);
        out.push({
          token,
          role: parseRole(role, where),
          ...(name ? { name: identity(name, 'name', where) } : {}),
          groups: groupList(groups, ',', where),
        });
      });
  }
  return new TokenTable(out);
}
