// The shape of one `xsm` command and the strict parsing of its arguments. A command declares its options
// (type, short alias, what it does) and its positionals; the parser refuses anything else before the command
// runs, so a typo (`--dryrun`) or a stray word never reaches the API, and `-h/--help` only ever prints help.
// Parsing is node:util parseArgs (strict); this module adds typed values, decimal integers and the help text.

import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { ApiClient } from './api-client.ts';

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

/**
 * Exit codes, the same for every command, so a script can branch on them: 0 done (and in sync), 1 failed or
 * out of sync, 2 usage error (nothing was done), 3 the API could not be reached or did not answer in time,
 * 4 refused by the API (not allowed, stale, needs consent, or invalid for the running site).
 */
export const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3, refused: 4 } as const;

/** What a command may use besides its arguments; tests inject a recording API client. */
export interface CliContext {
  io: CliIo;
  /** The API client (XSM_API, XSM_TOKEN); created only when a command calls it. */
  api(): ApiClient;
  /**
   * True under `--json`: `io.out` then prints nothing, and the command hands its answer to `result`, which
   * main prints as the one JSON document on stdout. Human notes still go to stderr.
   */
  json: boolean;
  /** The command's answer: printed as JSON under `--json`, ignored otherwise. The last call wins. */
  result(value: unknown): void;
}

interface OptionBase {
  /** One letter: `-m` for `--mem`. */
  short?: string;
  description: string;
}
export interface BooleanOption extends OptionBase {
  type: 'boolean';
}
export interface StringOption extends OptionBase {
  type: 'string';
  /** The value's placeholder in help: `--reason TEXT`. */
  value: string;
}
/** A decimal integer (digits only: `0x200`, `1e3`, `512abc`, `-1` are refused). */
export interface IntegerOption extends OptionBase {
  type: 'integer';
  value: string;
  min?: number;
  max?: number;
}
export interface ChoiceOption extends OptionBase {
  type: 'choice';
  choices: readonly string[];
}
export type OptionSpec = BooleanOption | StringOption | IntegerOption | ChoiceOption;

export interface PositionalSpec {
  /** Upper case placeholder: FILE, VM, HOST. */
  name: string;
  description: string;
  optional?: boolean;
  /** Takes the rest (one or more; zero or more when also optional). Only the last positional. */
  variadic?: boolean;
}

type OptionValue<S extends OptionSpec> = S extends BooleanOption
  ? boolean
  : S extends IntegerOption
    ? number | undefined
    : S extends { type: 'choice'; choices: readonly (infer C)[] }
      ? C | undefined
      : string | undefined;

type PositionalValue<P extends PositionalSpec> = P extends { variadic: true }
  ? string[]
  : P extends { optional: true }
    ? string | undefined
    : string;

export type OptionValues<O extends Record<string, OptionSpec>> = { [K in keyof O]: OptionValue<O[K]> };
export type PositionalValues<P extends readonly PositionalSpec[]> = {
  [S in P[number] as S['name']]: PositionalValue<S>;
};

export interface CommandSpec<O extends Record<string, OptionSpec>, P extends readonly PositionalSpec[]> {
  /** First word(s) after `xsm`, e.g. "site validate". */
  name: string;
  /** One line for `xsm help`. */
  summary: string;
  /** More lines for `xsm NAME --help`, after the summary. */
  details?: string[];
  positionals: P;
  options: O;
  /** Returns the process exit code: 0 ok, 1 the thing checked or asked for failed, 2 usage error. */
  run(args: { options: OptionValues<O>; positionals: PositionalValues<P> }, ctx: CliContext): Promise<number>;
}

/** A command after its spec's types are erased: what main.ts lists and dispatches. */
export interface Command {
  name: string;
  summary: string;
  details?: string[];
  positionals: readonly PositionalSpec[];
  options: Record<string, OptionSpec>;
  /** The usage line: `xsm vm set VM [--mem MiB] [--vcpus N]`. */
  usage: string;
  /** Parses strictly, then runs; throws UsageError (exit 2) before anything runs when the arguments are wrong. */
  execute(args: string[], ctx: CliContext): Promise<number>;
}

/** Wrong arguments: main prints the message and the usage line on stderr and exits 2. */
export class UsageError extends Error {}

export const HELP_OPTION: BooleanOption = { type: 'boolean', short: 'h', description: 'show this help and exit' };
/** Every command's `--json`: one document on stdout, shapes in docs/cli.md. */
export const JSON_OPTION: BooleanOption = {
  type: 'boolean',
  description: 'print one JSON document on stdout instead of text (shapes: docs/cli.md)',
};

/** Declares a command; its option and positional names type the values its `run` receives. */
export function defineCommand<const O extends Record<string, OptionSpec>, const P extends readonly PositionalSpec[]>(
  spec: CommandSpec<O, P>,
): Command {
  checkSpec(spec);
  const usage = usageLine(spec.name, spec.positionals, spec.options);
  return {
    name: spec.name,
    summary: spec.summary,
    ...(spec.details ? { details: spec.details } : {}),
    positionals: spec.positionals,
    options: spec.options,
    usage,
    async execute(args, ctx) {
      const parsed = parseCommandLine(args, spec.options, spec.positionals);
      // Set on the caller's context: main prints the result document (or the error) when it is on.
      ctx.json = parsed.json;
      const io = parsed.json ? { ...ctx.io, out: () => {} } : ctx.io;
      return spec.run(
        { options: parsed.options, positionals: parsed.positionals } as {
          options: OptionValues<O>;
          positionals: PositionalValues<P>;
        },
        { ...ctx, io },
      );
    },
  };
}

function checkSpec(spec: {
  name: string;
  options: Record<string, OptionSpec>;
  positionals: readonly PositionalSpec[];
}) {
  if ('help' in spec.options || 'json' in spec.options)
    throw new Error(`${spec.name}: --help and --json are every command's own options`);
  const shorts = Object.values(spec.options).flatMap((o) => (o.short ? [o.short] : []));
  if (shorts.includes('h') || new Set(shorts).size !== shorts.length)
    throw new Error(`${spec.name}: short options must be unique and not -h`);
  spec.positionals.forEach((p, i) => {
    if (p.variadic && i !== spec.positionals.length - 1) throw new Error(`${spec.name}: only the last may be variadic`);
    if (!p.optional && spec.positionals.slice(0, i).some((q) => q.optional))
      throw new Error(`${spec.name}: a required positional cannot follow an optional one`);
  });
}

/** Thrown by parseCommandLine when the arguments ask for help: main prints it and exits 0. */
export class HelpRequested extends Error {}

/** `--no-wait`: shared by the commands that store a version and would otherwise follow its jobs. */
export const NO_WAIT = { type: 'boolean', description: 'return once stored; do not follow the jobs' } as const;

/**
 * Parses `args` against the declared options and positionals. `-h/--help` anywhere (before `--`) wins over
 * everything, including other mistakes; any undeclared option, repeated option, missing or extra positional,
 * or malformed value is a UsageError.
 */
export function parseCommandLine(
  args: string[],
  options: Record<string, OptionSpec>,
  positionals: readonly PositionalSpec[],
): { options: Record<string, unknown>; positionals: Record<string, string | string[] | undefined>; json: boolean } {
  const config: ParseArgsConfig['options'] = { help: { type: 'boolean', short: 'h' }, json: { type: 'boolean' } };
  for (const [name, o] of Object.entries(options))
    config[name] = { type: o.type === 'boolean' ? 'boolean' : 'string', ...(o.short ? { short: o.short } : {}) };
  // A lenient pass first: help must win even over an unknown option, and unknown options get our message.
  const { tokens } = parseArgs({ args, options: config, strict: false, allowPositionals: true, tokens: true });
  if (tokens.some((t) => t.kind === 'option' && t.name === 'help')) throw new HelpRequested();
  const seen = new Set<string>();
  for (const t of tokens) {
    if (t.kind !== 'option') continue;
    if (!(t.name in options) && t.name !== 'json')
      throw new UsageError(unknownOption(t.rawName, [...Object.keys(options), 'json']));
    if (seen.has(t.name)) throw new UsageError(`--${t.name} is given twice`);
    seen.add(t.name);
  }
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args, options: config, strict: true, allowPositionals: true }) as typeof parsed;
  } catch (e) {
    throw new UsageError(firstLine(e));
  }
  const values: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(options)) values[name] = optionValue(name, o, parsed.values[name]);
  if (typeof parsed.values.json === 'string') throw new UsageError('--json takes no value');
  return {
    options: values,
    positionals: positionalValues(parsed.positionals, positionals),
    json: parsed.values.json === true,
  };
}

function firstLine(e: unknown): string {
  const m = (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
  return m.replace(/^Option '([^' ]+)(?: <value>)?' /, '$1 ');
}

function unknownOption(raw: string, known: string[]): string {
  const name = raw.replace(/^-+/, '');
  const near = known.filter((k) => editDistance(k, name) <= 2);
  return `unknown option ${raw}${near.length ? ` (did you mean --${near[0]}?)` : ''}`;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

function optionValue(name: string, o: OptionSpec, raw: string | boolean | undefined): unknown {
  if (o.type === 'boolean') return raw === true;
  if (raw === undefined) return undefined;
  const text = String(raw);
  if (o.type === 'string') {
    if (text === '') throw new UsageError(`--${name} needs a value (${o.value})`);
    return text;
  }
  if (o.type === 'choice') {
    if (!o.choices.includes(text))
      throw new UsageError(`--${name} is one of ${o.choices.join(', ')}; got ${JSON.stringify(text)}`);
    return text;
  }
  return parseDecimal(text, `--${name}`, o.min ?? 0, o.max);
}

/** A decimal integer in [min, max]: digits only, so `0x200`, `1e3`, `512abc`, ` 5` and `-1` are refused. */
export function parseDecimal(text: string, what: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const n = /^[0-9]+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n)) throw new UsageError(`${what} must be a decimal integer, got ${JSON.stringify(text)}`);
  if (n < min || n > max)
    throw new UsageError(
      `${what} must be ${max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `from ${min} to ${max}`}, got ${n}`,
    );
  return n;
}

function positionalValues(
  given: string[],
  specs: readonly PositionalSpec[],
): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  const rest = [...given];
  for (const p of specs) {
    if (p.variadic) {
      if (!rest.length && !p.optional) throw new UsageError(`give at least one ${p.name}`);
      out[p.name] = rest.splice(0);
    } else if (rest.length) out[p.name] = rest.shift();
    else if (p.optional) out[p.name] = undefined;
    else throw new UsageError(`missing ${p.name}`);
  }
  if (rest.length)
    throw new UsageError(
      `unexpected argument ${JSON.stringify(rest[0])}${specs.length ? '' : ' (this command takes none)'}`,
    );
  return out;
}

function optionUsage(name: string, o: OptionSpec): string {
  if (o.type === 'boolean') return `--${name}`;
  if (o.type === 'choice') return `--${name} ${o.choices.join('|')}`;
  return `--${name} ${o.value}`;
}

function positionalUsage(p: PositionalSpec): string {
  const word = p.variadic ? `${p.name}...` : p.name;
  return p.optional ? `[${word}]` : word;
}

function usageLine(name: string, positionals: readonly PositionalSpec[], options: Record<string, OptionSpec>): string {
  return [
    `xsm ${name}`,
    ...positionals.map(positionalUsage),
    ...Object.entries(options).map(([n, o]) => `[${optionUsage(n, o)}]`),
    '[--json]',
  ].join(' ');
}

/** Wraps `text` into lines of at most `width` columns (a word longer than that stays whole). */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** Two columns within `width`: terms padded to the widest (up to a limit), descriptions wrapped beside them. */
export function twoColumns(rows: [string, string][], width = 100, indent = '  '): string[] {
  const termWidth = Math.min(28, Math.max(...rows.map(([t]) => t.length)));
  const out: string[] = [];
  for (const [term, desc] of rows) {
    const lines = wrap(desc, width - indent.length - termWidth - 2);
    if (term.length > termWidth) {
      out.push(indent + term);
      for (const l of lines) out.push(indent + ' '.repeat(termWidth + 2) + l);
      continue;
    }
    lines.forEach((l, i) => out.push(indent + (i === 0 ? term.padEnd(termWidth) : ' '.repeat(termWidth)) + '  ' + l));
    if (!lines.length) out.push(indent + term);
  }
  return out;
}

/** The text `xsm NAME --help` prints. */
/** `usage: xsm NAME ...` within `width` columns, continuation lines aligned after the command name. */
export function usageLines(c: Pick<Command, 'name' | 'usage'>, width = 100): string[] {
  const head = `usage: xsm ${c.name}`;
  // Bracketed groups (`[--base N]`) stay whole.
  const parts = c.usage.slice(`xsm ${c.name}`.length).match(/\[[^\]]*\]|\S+/g) ?? [];
  const lines: string[] = [];
  let line = head;
  for (const part of parts) {
    if (line.length + 1 + part.length > width && line.trim().length > 0 && line !== head) {
      lines.push(line);
      line = ' '.repeat(head.length);
    }
    line += ` ${part}`;
  }
  lines.push(line);
  return lines;
}

export function commandHelp(c: Command, related: Command[] = []): string[] {
  const lines = [...usageLines(c), '', ...wrap(c.summary, 100)];
  if (c.details?.length) lines.push('', ...c.details.flatMap((d) => wrap(d, 100)));
  if (c.positionals.length) {
    lines.push('', 'Arguments:');
    lines.push(...twoColumns(c.positionals.map((p) => [positionalUsage(p).replace(/^\[|\]$/g, ''), p.description])));
  }
  lines.push('', 'Options:');
  const opts: [string, string][] = Object.entries(c.options).map(([n, o]) => [
    `${o.short ? `-${o.short}, ` : ''}${optionUsage(n, o)}`,
    o.description,
  ]);
  opts.push(['--json', JSON_OPTION.description], ['-h, --help', HELP_OPTION.description]);
  lines.push(...twoColumns(opts));
  if (related.length) {
    lines.push('', 'Related commands:');
    lines.push(...twoColumns(related.map((r) => [`xsm ${r.name}`, r.summary])));
  }
  return lines;
}
