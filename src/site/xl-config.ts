// The xl domain config format (xl.cfg(5)), read well enough to run an operator's own config file: the
// paper's config="apache_svr" names /etc/xen/apache_svr.cfg on the Dom0. XSM sets the few keys the site
// file owns (name, memory, vcpus, the first vif's mac and ip) and keeps every other byte of the file as
// written: comments, layout, keys XSM does not know.
//
// Syntax (libxlu's lexer): `KEY = VALUE` or `KEY += VALUE`, separated by newlines or `;`; `#` starts a
// comment; a VALUE is a '...' or "..." string, a number (decimal, 0x hex, 0 octal), a bare word, or a
// `[ ... ]` list of those that may span lines, with comments inside and a trailing comma.

/** A value as the file gives it. Strings are unquoted; numbers keep their text. */
export type XlValue =
  { kind: 'string'; value: string } | { kind: 'number'; value: string } | { kind: 'list'; items: string[] };

export interface XlEntry {
  key: string;
  /** `+=` appends to an earlier value of the same key. */
  append: boolean;
  value: XlValue;
  /** Offsets of the value's text in the file (start inclusive, end exclusive). */
  start: number;
  end: number;
  /** 1-based line and column of the key. */
  line: number;
  col: number;
}

/** A config file that cannot be read, with the place (line:col) the problem is at. */
export class XlConfigError extends Error {
  constructor(
    readonly line: number,
    readonly col: number,
    readonly problem: string,
  ) {
    super(`${line}:${col}: ${problem}`);
    this.name = 'XlConfigError';
  }
}

/** Reads an xl config file into its entries, in file order; throws XlConfigError at the first problem. */
export function parseXlConfig(text: string): XlEntry[] {
  return new XlReader(text).entries();
}

class XlReader {
  private i = 0;
  constructor(private readonly text: string) {}

  /**
   * The last place `where` answered for. Entries are read in order, so each call counts only the line ends
   * after it: counting from the file's start for every entry made reading a file quadratic in its length.
   */
  private seen = { at: 0, line: 1, lineStart: 0 };
  private where(at = this.i): { line: number; col: number } {
    let { at: from, line, lineStart } = at >= this.seen.at ? this.seen : { at: 0, line: 1, lineStart: 0 };
    for (; from < at; from++)
      if (this.text.charCodeAt(from) === 10) {
        line++;
        lineStart = from + 1;
      }
    this.seen = { at, line, lineStart };
    return { line, col: at - lineStart + 1 };
  }
  private fail(problem: string, at = this.i): never {
    const { line, col } = this.where(at);
    throw new XlConfigError(line, col, problem);
  }
  /** Skips blanks and comments; with `newlines`, also line ends. */
  private skip(newlines: boolean): void {
    for (;;) {
      const ch = this.text[this.i];
      if (ch === ' ' || ch === '\t' || ch === '\r' || (newlines && ch === '\n')) this.i++;
      else if (ch === '#') while (this.i < this.text.length && this.text[this.i] !== '\n') this.i++;
      else return;
    }
  }

  entries(): XlEntry[] {
    const out: XlEntry[] = [];
    for (;;) {
      this.skip(true);
      while (this.text[this.i] === ';') {
        this.i++;
        this.skip(true);
      }
      if (this.i >= this.text.length) return out;
      out.push(this.entry());
      this.skip(false);
      const ch = this.text[this.i];
      if (ch !== undefined && ch !== '\n' && ch !== ';')
        this.fail(`expected a new line or ; after the value, found ${JSON.stringify(ch)}`);
    }
  }

  private entry(): XlEntry {
    const keyAt = this.i;
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.text.slice(this.i, this.i + 256));
    if (!m) this.fail(`expected a setting name, found ${JSON.stringify(this.text[this.i])}`);
    const key = m[0];
    this.i += key.length;
    this.skip(false);
    let append = false;
    if (this.text.startsWith('+=', this.i)) {
      append = true;
      this.i += 2;
    } else if (this.text[this.i] === '=') this.i++;
    else this.fail(`expected = after ${key}`);
    this.skip(false);
    const start = this.i;
    const value = this.value();
    return { key, append, value, start, end: this.i, ...this.where(keyAt) };
  }

  private value(): XlValue {
    const ch = this.text[this.i];
    if (ch === '[') return { kind: 'list', items: this.list() };
    if (ch === '"' || ch === "'") return { kind: 'string', value: this.string() };
    const m = /^[A-Za-z0-9_.+\-/:]+/.exec(this.text.slice(this.i, this.i + 4096));
    if (!m) this.fail(ch === undefined || ch === '\n' ? 'a setting needs a value' : `unexpected ${JSON.stringify(ch)}`);
    this.i += m[0].length;
    return /^[0-9]/.test(m[0]) ? { kind: 'number', value: m[0] } : { kind: 'string', value: m[0] };
  }

  private string(): string {
    const quote = this.text[this.i]!;
    const at = this.i++;
    let out = '';
    for (;;) {
      const ch = this.text[this.i];
      if (ch === undefined || ch === '\n') this.fail(`string opened here is not closed with ${quote}`, at);
      this.i++;
      if (ch === quote) return out;
      if (ch === '\\') {
        const next = this.text[this.i++];
        if (next === undefined) this.fail('a backslash ends the file', this.i - 1);
        out += next === 'n' ? '\n' : next === 't' ? '\t' : next;
      } else out += ch;
    }
  }

  private list(): string[] {
    const at = this.i++;
    const items: string[] = [];
    for (;;) {
      this.skip(true);
      if (this.i >= this.text.length) this.fail('list opened here is not closed with ]', at);
      if (this.text[this.i] === ']') {
        this.i++;
        return items;
      }
      const v = this.value();
      if (v.kind === 'list') this.fail('a list inside a list is not allowed', this.i);
      items.push(v.value);
      this.skip(true);
      if (this.i >= this.text.length) this.fail('list opened here is not closed with ]', at);
      if (this.text[this.i] === ',') this.i++;
      else if (this.text[this.i] !== ']')
        this.fail(`expected , or ] in the list opened at line ${this.where(at).line}`);
    }
  }
}

/** The last value of `key` (xl takes the last one), or undefined. */
export function xlValue(entries: readonly XlEntry[], key: string): XlValue | undefined {
  return entries.filter((e) => e.key === key && !e.append).at(-1)?.value;
}

/** What XSM sets over an operator's config file: the VM's own values from the site file. */
export interface XlOverrides {
  name: string;
  memMiB: number;
  vcpus: number;
  /** The first vif's MAC (lower case, `:` separated). */
  hwaddr: string;
  /** `DHCP`, or a static address written as the first vif's `ip=`. */
  ip: string;
}

function quote(value: string): string {
  if (/["\\\n\r]/.test(value))
    throw new Error(`refusing to write ${JSON.stringify(value)} into an xl config: quotes, backslashes and newlines`);
  return `"${value}"`;
}

/** A VIFSPEC with `mac` (and `ip` when static) set and every other key kept in its place. */
export function overrideVif(spec: string, hwaddr: string, ip: string): string {
  const parts = spec
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  const set = (key: string, value: string | undefined) => {
    const i = parts.findIndex((p) => p.split('=')[0]!.trim() === key);
    if (value === undefined) {
      if (i >= 0) parts.splice(i, 1);
    } else if (i >= 0) parts[i] = `${key}=${value}`;
    else parts.push(`${key}=${value}`);
  };
  set('mac', hwaddr);
  set('ip', ip === 'DHCP' ? undefined : ip);
  return parts.join(',');
}

/**
 * The file with the VM's name, memory, vcpus and first vif set from the site file; the rest verbatim.
 * `maxmem`/`maxvcpus` are raised to the VM's size when the file gives less (Xen would refuse the
 * domain); a file's larger ceilings stay, so the VM can grow live up to them. Keys the file lacks are
 * added at the end, under a comment saying XSM added them.
 */
export function applyXlOverrides(text: string, o: XlOverrides): string {
  const entries = parseXlConfig(text);
  if (entries.some((e) => e.append && ['name', 'memory', 'vcpus', 'vif', 'maxmem', 'maxvcpus'].includes(e.key)))
    throw new XlConfigError(
      entries.find((e) => e.append)!.line,
      entries.find((e) => e.append)!.col,
      'XSM sets name, memory, vcpus and vif itself; write them with = rather than +=',
    );
  const edits: { start: number; end: number; text: string }[] = [];
  const added: string[] = [];
  const setKey = (key: string, value: string) => {
    const all = entries.filter((e) => e.key === key);
    if (!all.length) added.push(`${key} = ${value}`);
    for (const e of all) edits.push({ start: e.start, end: e.end, text: value });
  };
  const num = (key: string) => {
    const v = xlValue(entries, key);
    return v?.kind === 'number' ? Number(v.value) : undefined;
  };
  setKey('name', quote(o.name));
  setKey('memory', String(o.memMiB));
  setKey('vcpus', String(o.vcpus));
  const maxmem = num('maxmem');
  if (maxmem !== undefined && maxmem < o.memMiB) setKey('maxmem', String(o.memMiB));
  const maxvcpus = num('maxvcpus');
  if (maxvcpus !== undefined && maxvcpus < o.vcpus) setKey('maxvcpus', String(o.vcpus));
  const vif = xlValue(entries, 'vif');
  const vifs = vif?.kind === 'list' ? vif.items : vif ? [vif.value] : [];
  const first = overrideVif(vifs[0] ?? 'bridge=xenbr0', o.hwaddr, o.ip);
  setKey('vif', `[ ${[first, ...vifs.slice(1)].map((v) => `'${v.replaceAll("'", '')}'`).join(', ')} ]`);
  let out = text;
  for (const e of edits.sort((a, b) => b.start - a.start)) out = out.slice(0, e.start) + e.text + out.slice(e.end);
  if (added.length) {
    if (out.length && !out.endsWith('\n')) out += '\n';
    out += `# Added by XSM from the site file:\n${added.join('\n')}\n`;
  }
  return out;
}

/** What the agent reports about one config file besides its hash: the domain name it gives, if any. */
export function xlConfigName(text: string): string | undefined {
  try {
    const v = xlValue(parseXlConfig(text), 'name');
    return v?.kind === 'string' ? v.value : undefined;
  } catch {
    return undefined;
  }
}
