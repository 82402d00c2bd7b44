// The shape of one `xsm` command. Each command lives in src/cli/commands/<name>.ts and is listed in main.ts.

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
}

export interface Command {
  /** First word(s) after `xsm`, e.g. "site validate". */
  name: string;
  usage: string;
  summary: string;
  /** Returns the process exit code: 0 ok, 1 the thing checked is wrong, 2 usage error. */
  run(args: string[], io: CliIo): Promise<number>;
}

export class UsageError extends Error {}

/** Splits `--flag`, `--key=value` / `--key value` (for keys in `valued`) from positionals. */
export function parseArgs(
  args: string[],
  valued: readonly string[] = [],
): { positional: string[]; flags: Map<string, string | true> } {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq !== -1) flags.set(a.slice(2, eq), a.slice(eq + 1));
      else if (valued.includes(a.slice(2))) {
        const v = args[++i];
        if (v === undefined) throw new UsageError(`${a} needs a value`);
        flags.set(a.slice(2), v);
      } else flags.set(a.slice(2), true);
    } else positional.push(a);
  }
  return { positional, flags };
}
