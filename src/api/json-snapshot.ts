// A list that many clients poll (GET /api/vms: 10,000 VMs, about 2 MB) is built at most once per `maxAgeMs`
// for the same key (the site version and the converged version), whatever the number of readers: the body
// and its ETag are kept, readers get them at once (a client holding that ETag gets 304 and no body), and a
// snapshot older than `maxAgeMs` is rebuilt in the background while readers keep getting the last one. So
// reads cost the applying processes one rebuild per interval, not one per request. A new key (a new version
// stored, or one converged) is never answered from the old snapshot: readers wait for the new one.
// Each snapshot also holds the body gzipped once, for the clients that accept it (browsers and Node's fetch,
// which the CLI uses, do by default): 1.9 MB written to 100 connections at once is what kept the full list's
// p99 at half a second; the gzipped list is about a tenth of that.

import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';

const gzip = promisify(gzipCb);

/** One encoding of a snapshot's body, with a strong validator of its own bytes (RFC 9110 8.8.3). */
export interface Representation {
  body: Buffer;
  etag: string;
}

export interface Snapshot<T = unknown> {
  key: string;
  /** What was built, for answers made of part of it (a page of the list); never to be changed. */
  readonly value: T;
  /** Kept as bytes: a string would be encoded to UTF-8 again for every reader (2 MB each at 10,000 VMs). */
  body: Buffer;
  /** A strong validator of `body`: equal bodies get equal tags, across rebuilds and processes. */
  etag: string;
  /** `body` gzipped, with an ETag apart from the plain body's: a cache must never mix the two. */
  gzip: Representation;
  builtAt: number;
}

/** A JSON body as a snapshot keeps it: its bytes, their hash (the ETag's), and the same bytes gzipped. */
export interface EncodedJson {
  body: Buffer;
  hash: string;
  gzip: Buffer;
}

/**
 * Hashes and gzips a JSON body. The gzip runs on libuv's thread pool; `previous`'s is reused when the hash
 * is the same (a steady site rebuilds the same list every interval; the same body gives the same bytes at a
 * fixed zlib level, so the tag stays exact).
 */
export async function encodeJson(body: Buffer, previous?: Pick<EncodedJson, 'hash' | 'gzip'>): Promise<EncodedJson> {
  const hash = createHash('sha256').update(body).digest('base64url').slice(0, 27);
  const gzipped = previous?.hash === hash ? previous.gzip : await gzip(body, { level: 6 });
  return { body, hash, gzip: gzipped };
}

/** What a build gives a snapshot: the value (then stringified here) or bytes already encoded elsewhere. */
type Built<T> = { value: T } | { encoded: EncodedJson };

/** A kept snapshot. A body built in another thread comes without its value: parsed once, when a page asks. */
class KeptSnapshot<T> implements Snapshot<T> {
  readonly etag: string;
  readonly gzip: Representation;

  constructor(
    readonly key: string,
    private parsed: { value: T } | undefined,
    readonly body: Buffer,
    readonly hash: string,
    gzipBody: Buffer,
    readonly builtAt: number,
    previous: KeptSnapshot<T> | undefined,
  ) {
    this.etag = `"${hash}"`;
    // The same body: the same gzip representation, kept as one object (and one buffer) across rebuilds.
    this.gzip = previous?.hash === hash ? previous.gzip : { body: gzipBody, etag: `"${hash}-gzip"` };
  }

  get value(): T {
    this.parsed ??= { value: JSON.parse(this.body.toString()) as T };
    return this.parsed.value;
  }
}

export class JsonSnapshot<T = unknown> {
  private last: KeptSnapshot<T> | undefined;
  private building: { key: string; done: Promise<Snapshot<T>> } | undefined;
  /** Builds are numbered as they start; only a later one replaces the kept snapshot. */
  private started = 0;
  private kept = 0;
  private readonly make: () => Promise<Built<T>>;

  /**
   * `source`: a function giving the value, stringified here a slice per event-loop turn (`stringifyInSlices`);
   * or `{ encoded }`, giving bodies made elsewhere (a worker thread), of which this thread only keeps the bytes.
   */
  constructor(
    source: (() => Promise<T>) | { encoded: () => Promise<EncodedJson> },
    private readonly maxAgeMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.make =
      typeof source === 'function'
        ? async () => ({ value: await source() })
        : async () => ({ encoded: await source.encoded() });
  }

  /** The snapshot for `key`: the kept one when it has that key (rebuilt behind it when old), else a new one. */
  async get(key: string): Promise<Snapshot<T>> {
    const last = this.last;
    if (last && last.key === key) {
      if (this.now() - last.builtAt >= this.maxAgeMs) void this.rebuild(key).catch(() => {});
      return last;
    }
    return this.rebuild(key);
  }

  /** The kept snapshot's hash and gzip, for a rebuild to reuse when its body is the same. */
  private previous(): Pick<EncodedJson, 'hash' | 'gzip'> | undefined {
    return this.last && { hash: this.last.hash, gzip: this.last.gzip.body };
  }

  private rebuild(key: string): Promise<Snapshot<T>> {
    if (this.building?.key === key) return this.building.done;
    const seq = ++this.started;
    const done = (async () => {
      const startedAt = this.now();
      const built = await this.make();
      const encoded =
        'encoded' in built ? built.encoded : await encodeJson(await stringifyInSlices(built.value), this.previous());
      const value = 'value' in built ? { value: built.value } : undefined;
      const snap = new KeptSnapshot<T>(key, value, encoded.body, encoded.hash, encoded.gzip, startedAt, this.last);
      // A slow build that started earlier never replaces one that started later (its data may be older).
      if (seq > this.kept) {
        this.kept = seq;
        this.last = snap;
      }
      return snap;
    })();
    const entry = { key, done };
    this.building = entry;
    void done
      .finally(() => {
        if (this.building === entry) this.building = undefined;
      })
      .catch(() => {});
    return done;
  }
}

/** How many array elements are stringified in one turn of the event loop (500 VMs: about 2 ms). */
const SLICE = 500;

/**
 * `JSON.stringify(value)` as UTF-8 bytes, the same bytes, but with the arrays among a plain object's values
 * stringified a slice per turn of the event loop: 10,000 VMs in one call held every reader waiting for
 * tens of milliseconds once per rebuild, and far longer on a busy machine.
 */
export async function stringifyInSlices(value: unknown): Promise<Buffer> {
  if (!isPlainObject(value)) return Buffer.from(JSON.stringify(value));
  const parts: Buffer[] = [];
  let sep = '{';
  for (const [k, v] of Object.entries(value)) {
    const head = `${sep}${JSON.stringify(k)}:`;
    if (!Array.isArray(v) || v.length <= SLICE || 'toJSON' in v) {
      const text = JSON.stringify(v) as string | undefined;
      if (text === undefined) continue; // undefined, a function or a symbol: JSON.stringify leaves the key out
      parts.push(Buffer.from(head + text));
    } else {
      parts.push(Buffer.from(`${head}[`));
      for (let i = 0; i < v.length; i += SLICE) {
        if (i > 0) await new Promise((r) => setImmediate(r));
        const slice = JSON.stringify(v.slice(i, i + SLICE));
        parts.push(Buffer.from((i > 0 ? ',' : '') + slice.slice(1, -1)));
      }
      parts.push(Buffer.from(']'));
    }
    sep = ',';
  }
  parts.push(Buffer.from(sep === '{' ? '{}' : '}'));
  return Buffer.concat(parts);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || 'toJSON' in value) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Whether a request's Accept-Encoding allows gzip (RFC 9110 12.5.3): named or matched by `*`, with a q above
 * zero. No header means the client said nothing: it gets the plain body, as most servers answer.
 */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (!acceptEncoding) return false;
  let gzipQ: number | undefined;
  let anyQ: number | undefined;
  for (const part of acceptEncoding.split(',')) {
    const [coding, ...params] = part.split(';').map((x) => x.trim().toLowerCase());
    const qParam = params.find((p) => /^q\s*=/.test(p));
    const q = qParam === undefined ? 1 : Number(qParam.replace(/^q\s*=\s*/, ''));
    if (!Number.isFinite(q)) continue;
    if (coding === 'gzip' || coding === 'x-gzip') gzipQ = q;
    else if (coding === '*') anyQ = q;
  }
  return (gzipQ ?? anyQ ?? 0) > 0;
}

/**
 * Whether a conditional GET holds the current ETag (weak comparison, RFC 9110 13.1.2). Not express's
 * `req.fresh`: that is a cache's rule and answers "stale" to every request with Cache-Control: no-cache,
 * which fetch() adds to each request carrying If-None-Match, so no poller would ever get a 304.
 */
export function notModified(ifNoneMatch: string | undefined, etag: string): boolean {
  if (!ifNoneMatch) return false;
  if (ifNoneMatch.trim() === '*') return true;
  return ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === etag);
}

/**
 * Calls `read` once for all callers of the same turn of the event loop. A caller joins only a read that has
 * not been sent yet, so what it gets was read after it asked: never older than a version stored before its
 * request arrived. Under 100 polling connections this turns one Redis round trip per request (a socket
 * write each, the largest cost in a profile of GET /api/vms) into one per batch.
 */
export class TickBatchedRead<T> {
  private next: Promise<T> | undefined;

  constructor(private readonly read: () => Promise<T>) {}

  get(): Promise<T> {
    this.next ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      this.next = undefined; // sent: a later caller starts the next batch
      return this.read();
    });
    return this.next;
  }
}
