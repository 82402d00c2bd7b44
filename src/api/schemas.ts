// What every API route accepts, as zod schemas: path parameters, query strings and JSON bodies. A route
// reads its input only through `input(...)`, so a wrong type, an unknown field or a number written as
// `"0x200"` is refused with 400 `bad-parameter` naming the field, before anything is read or stored —
// never a 500, never a value coerced into something the caller did not write.

import { z } from 'zod';

/** One refused field: where it was, its name (dotted path), what was expected and what came. */
export interface InputIssue {
  in: 'body' | 'query' | 'path';
  field: string;
  expected: string;
  got?: string;
  /** Fields the route does not take (a typo such as `allowDisruptions`). */
  unknown?: string[];
}

export class InputError extends Error {
  constructor(readonly issues: InputIssue[]) {
    super(
      issues
        .map((i) =>
          i.unknown
            ? `unknown ${i.in} field${i.unknown.length === 1 ? '' : 's'} ${i.unknown.join(', ')}`
            : `${i.in} ${i.field || 'value'}: expected ${i.expected}${i.got !== undefined ? `, got ${i.got}` : ''}`,
        )
        .join('; '),
    );
    this.name = 'InputError';
  }
}

/** A short, safe rendering of what the caller sent: its JSON type, and the value if it is short. */
function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'object') return 'object';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  return `${typeof value} ${String(value)}`;
}

function expectedOf(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return issue.expected === 'int' ? 'a whole number' : issue.expected;
    case 'invalid_format':
      return issue.format === 'regex'
        ? `text matching ${(issue as { pattern?: string }).pattern ?? 'the format'}`
        : issue.format;
    case 'too_small':
      return `${issue.origin === 'string' ? 'length ' : ''}at least ${String(issue.minimum)}`;
    case 'too_big':
      return `${issue.origin === 'string' ? 'length ' : ''}at most ${String(issue.maximum)}`;
    case 'invalid_value':
      return `one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    default:
      return issue.message;
  }
}

/** Parses `value` with `schema` or throws InputError listing every problem, each located. */
export function input<S extends z.ZodType>(schema: S, value: unknown, where: InputIssue['in']): z.output<S> {
  const r = schema.safeParse(value, { reportInput: true });
  if (r.success) return r.data;
  throw new InputError(
    r.error.issues.map((issue) => {
      const field = issue.path.map(String).join('.');
      if (issue.code === 'unrecognized_keys')
        return { in: where, field, expected: 'no such field', unknown: issue.keys };
      const got = 'input' in issue ? describe(issue.input) : undefined;
      return { in: where, field, expected: expectedOf(issue), ...(got !== undefined ? { got } : {}) };
    }),
  );
}

// --- building blocks ---------------------------------------------------------------------------------

/** A decimal integer in a query or path: digits only (`0x200`, `1e3`, `-1`, ` 5` are refused). */
const decimal = (max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .regex(/^[0-9]{1,15}$/, 'a decimal whole number')
    .transform(Number)
    .pipe(z.number().max(max));
/** A yes/no flag in a query: 1/true/yes or 0/false/no. */
const flag = z
  .enum(['1', 'true', 'yes', '0', 'false', 'no'])
  .transform((v) => v === '1' || v === 'true' || v === 'yes');
/** Free text an operator gives (a reason, a file name for messages): bounded, no control characters. */
const text = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[^\x00-\x08\x0b-\x1f\x7f]*$/, 'text without control characters');
/** Names of VMs, hosts, queues and job ids as the site file allows them. */
const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}$/, 'a name (letters, digits, . _ - : @ +)');
const wholeNumber = (min: number, max: number) => z.number().int().min(min).max(max);

// --- routes ------------------------------------------------------------------------------------------

export const versionPath = z.strictObject({ version: decimal() });
export const vmPath = z.strictObject({ name });
export const jobPath = z.strictObject({ queue: name, id: name });
/** Routes whose path names a host or VM as `:name`. */
export const namePath = vmPath;

export const versionsQuery = z.strictObject({
  limit: decimal(10_000).optional(),
  /** The `next` of the previous page: versions before this one. */
  cursor: decimal().optional(),
});
export const fileQuery = z.strictObject({ file: text(500).optional() });

export const submitQuery = z.strictObject({
  base: decimal(),
  reason: text(500).optional(),
  file: text(500).optional(),
  apply: flag.optional(),
  allowDisruption: flag.optional(),
  repair: flag.optional(),
  planHash: z
    .string()
    .regex(/^[0-9a-f]{64}$/, "the 64 hex digits of a saved plan's hash")
    .optional(),
});

const editBody = {
  reason: text(500).optional(),
  allowDisruption: z.boolean().optional(),
  /** Answer the plan the edit would get, store nothing (the console's preview before consent). */
  dryRun: z.boolean().optional(),
};
export const migrateBody = z.strictObject({ to: name, ...editBody });
export const reconfigureBody = z
  .strictObject({
    memMiB: wholeNumber(16, 16_777_216).optional(),
    vcpus: wholeNumber(1, 512).optional(),
    ...editBody,
  })
  .refine((b) => b.memMiB !== undefined || b.vcpus !== undefined, {
    message: 'give memMiB and/or vcpus',
    path: ['memMiB'],
  });
/** `xsm host drain` / `undrain`: the same consent and dry run as every edit; undrain may bring VMs back. */
export const drainBody = z.strictObject({ ...editBody }).optional();
/** POST /api/admin/recover (src/services/recovery.ts). */
export const recoverBody = z
  .strictObject({
    dryRun: z.boolean().optional(),
    /** How long to wait for the agents' answers, ms (default 15000, at most 10 min). */
    waitMs: z.number().int().min(100).max(600_000).optional(),
    overOlder: z.boolean().optional(),
    allowMissing: z.boolean().optional(),
  })
  .optional();
export const undrainBody = z.strictObject({ ...editBody, return: z.boolean().optional() }).optional();
/** `xsm hosts upgrade`: the image (`NAME[:VERSION]`), the hosts in order (default all), dry run and consent. */
export const upgradeBody = z.strictObject({
  image: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}(:[0-9]{1,9})?$/, 'NAME or NAME:VERSION, e.g. dom0:3'),
  hosts: z.array(name).min(1).max(10_000).optional(),
  reason: text(500).optional(),
  allowDisruption: z.boolean().optional(),
  dryRun: z.boolean().optional(),
});
export const upgradePath = z.strictObject({ id: z.string().regex(/^upgrade-[a-z0-9-]{1,60}$/, 'an upgrade id') });
/** DELETE may come without a body: express leaves `{}` or undefined. */
export const removeBody = z.strictObject({ ...editBody, deleteDisks: z.boolean().optional() }).optional();

export const jobsQuery = z.strictObject({
  state: z
    .string()
    .regex(/^[a-z-]+(,[a-z-]+)*$/, 'job states separated by commas')
    .optional(),
  queue: name.optional(),
  limit: decimal(10_000).optional(),
});

/** An imbalance threshold of the rebalancer's hysteresis (imbalance is a sum of two standard deviations). */
const threshold = z.number().min(0).max(2);
export const rebalanceBody = z
  .strictObject({
    dryRun: z.boolean().optional(),
    mode: z.enum(['performance', 'density']).optional(),
    maxMoves: wholeNumber(1, 1000).optional(),
    actAbove: threshold.optional(),
    stopBelow: threshold.optional(),
  })
  .optional();
export const scheduleBody = z.strictObject({
  everyMinutes: wholeNumber(0, 10_080),
  mode: z.enum(['performance', 'density']).optional(),
  maxMoves: wholeNumber(1, 1000).optional(),
  actAbove: threshold.optional(),
  stopBelow: threshold.optional(),
});

/** GET /api/vms: the whole list without them; a page of it (name order) with either. */
export const vmsQuery = z.strictObject({
  limit: decimal(10_000).pipe(z.number().min(1)).optional(),
  /** The `next` of the previous page: VMs named after this one. */
  after: name.optional(),
});

export const migrationsQuery = z.strictObject({
  vm: name.optional(),
  limit: decimal(10_000).optional(),
});

export const auditQuery = z.strictObject({
  user: text(200).optional(),
  set: text(200).optional(),
  kind: name.optional(),
  since: text(40).optional(),
  until: text(40).optional(),
  limit: decimal(10_000).optional(),
  /** The `next` of the previous page (an entry id). */
  cursor: z
    .string()
    .regex(/^[0-9]{1,15}-[0-9]{1,10}$/, 'the next of a previous page')
    .optional(),
});

const mac = z.string().regex(/^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$/, 'a MAC address such as 52:54:00:12:34:56');
const devicePath = z.string().regex(/^\/[A-Za-z0-9/._-]{1,200}$/, 'an absolute device path such as /dev/sda');
export const deployBody = z.strictObject({
  macs: z.array(mac).min(1).max(1000),
  method: z.enum(['unicast', 'multicast', 'broadcast', 'chain']).optional(),
  image: name.optional(),
  disk: devicePath.optional(),
  /** Per machine: boot MAC -> disk. */
  disks: z.record(mac, devicePath).optional(),
});

/** POST /api/images/capture. */
export const imageCaptureBody = z.strictObject({
  host: name,
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'an image name (letters, digits, . _ -; at most 64)'),
});

/** POST /api/hosts/:name/update: `image` is NAME (its newest version) or NAME:VERSION. */
export const hostUpdateBody = z.strictObject({
  image: z.string().min(1).max(80),
  dryRun: z.boolean().optional(),
});

/** GET /api/images/jobs/:id */
export const imageJobPath = z.strictObject({
  id: z.string().regex(/^(image-capture|host-update)-[A-Za-z0-9._:@+-]{1,200}$/, 'an image job id'),
});
