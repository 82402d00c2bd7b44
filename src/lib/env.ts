// Settings read from the environment that must be whole numbers within bounds: one parser, one message.

/**
 * `env[name]` as a decimal whole number from `min` to `max`, or `dflt` when unset or empty; anything else
 * throws `NAME must be WHAT from MIN to MAX, got "TEXT"` (WHAT: "a whole number", "whole seconds"...).
 */
export function envWholeNumber(
  env: NodeJS.ProcessEnv,
  name: string,
  dflt: number,
  min: number,
  max: number,
  what = 'a whole number',
): number {
  const text = env[name];
  if (text === undefined || text === '') return dflt;
  const n = /^[0-9]{1,12}$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) throw new Error(`${name} must be ${what} from ${min} to ${max}, got "${text}"`);
  return n;
}
