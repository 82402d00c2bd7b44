// How a benchmark reads its command line: `--help` prints the usage and runs nothing, an unknown option or a
// missing value prints the usage (not a stack trace) and exits 2, and a count that is not a whole number is
// refused the same way.
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs (strict), after `--help`/`-h` anywhere has printed the usage and exited; an unknown option exits 2. */
export function benchOptions<O extends Options>(options: O, usage: string) {
  if (process.argv.slice(2).some((a) => a === '--help' || a === '-h')) {
    console.log(usage);
    process.exit(0);
  }
  const config = { options, strict: true as const };
  let values: ReturnType<typeof parseArgs<typeof config>>['values'];
  try {
    values = parseArgs(config).values;
  } catch (e) {
    console.error(`${e instanceof Error ? e.message : String(e)}\n${usage}`);
    process.exit(2);
  }
  return {
    values,
    /** An option's whole-number value; exits with the usage unless it is at least `min`. */
    count(name: keyof O & keyof typeof values, min = 1): number {
      const n = Number(values[name]);
      if (Number.isInteger(n) && n >= min) return n;
      console.error(`--${String(name)} must be a whole number >= ${min}, not ${String(values[name])}\n${usage}`);
      process.exit(2);
    },
  };
}
