// Bearer-token auth with three roles. viewer reads; operator also submits, applies and acts on VMs and
// jobs; admin also opens the queue dashboard (which can delete jobs). Tokens come from XSM_TOKENS
// ("token:role,token:role") or XSM_TOKENS_FILE (one "token role [name]" per line), never from Redis, so a
// Redis compromise does not hand out API access.

import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export interface Principal {
  name: string;
  role: Role;
}

export function roleAllows(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

interface TokenEntry {
  digest: Buffer;
  principal: Principal;
}

export class TokenTable {
  private readonly entries: TokenEntry[];
  constructor(tokens: { token: string; role: Role; name?: string }[]) {
    this.entries = tokens.map((t, i) => {
      if (t.token.length < 16)
        throw new Error(
          `API token #${i + 1} (${t.name ?? t.role}) is shorter than 16 characters; use e.g. \`openssl rand -hex 24\``,
        );
      return { digest: digest(t.token), principal: { name: t.name ?? `${t.role}-${i + 1}`, role: t.role } };
    });
  }
  get size(): number {
    return this.entries.length;
  }
  /** Constant-time over every entry, so timing does not tell which token prefix matched. */
  lookup(token: string): Principal | undefined {
    const d = digest(token);
    let found: Principal | undefined;
    for (const e of this.entries) if (timingSafeEqual(e.digest, d)) found = e.principal;
    return found;
  }
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function parseRole(s: string, where: string): Role {
  if ((ROLES as readonly string[]).includes(s)) return s as Role;
  throw new Error(`${where}: unknown role "${s}"; use viewer, operator or admin`);
}

export function tokensFromEnv(env: NodeJS.ProcessEnv = process.env): TokenTable {
  const out: { token: string; role: Role; name?: string }[] = [];
  if (env.XSM_TOKENS) {
    env.XSM_TOKENS.split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .forEach((entry, i) => {
        const at = entry.lastIndexOf(':');
        if (at <= 0) throw new Error(`XSM_TOKENS entry #${i + 1}: expected token:role`);
        out.push({ token: entry.slice(0, at), role: parseRole(entry.slice(at + 1), `XSM_TOKENS entry #${i + 1}`) });
      });
  }
  if (env.XSM_TOKENS_FILE) {
    readFileSync(env.XSM_TOKENS_FILE, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        const l = line.replace(/#.*/, '').trim();
        if (!l) return;
        const [token, role, name] = l.split(/\s+/);
        if (!token || !role) throw new Error(`${env.XSM_TOKENS_FILE}:${i + 1}: expected "TOKEN ROLE [NAME]"`);
        out.push({ token, role: parseRole(role, `${env.XSM_TOKENS_FILE}:${i + 1}`), ...(name ? { name } : {}) });
      });
  }
  return new TokenTable(out);
}
