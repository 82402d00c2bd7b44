// The image catalogue, as SystemImager keeps one: named images, each with numbered versions (built by
// scripts/build-image, or captured from an installed Dom0), in the images directory the deploy server
// serves. Each version's metadata is a manifest file beside the images (`<name>/<version>.json`), not a
// Redis key: it lives and dies with the image file it describes (a restored or copied images directory
// brings its catalogue along; a lost Redis loses no image), and the rsync daemon and the API read the
// same directory. A version number is taken by creating its manifest with link(2), which fails when the
// name exists, so two captures of one name never get the same version.
//
// An older images directory has unversioned `<name>.json` manifests at its top: they are version 0.

import { randomBytes } from 'node:crypto';
import { link, mkdir, readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PermanentError } from '../lib/errors.ts';
import type { ImageManifest, ImageSource } from './image.ts';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** `NAME` (the newest version) or `NAME:VERSION`. */
export interface ImageRef {
  name: string;
  version?: number;
}

/** A request names an image the catalogue does not have: says what it does have. */
export class ImageRefError extends PermanentError {
  constructor(message: string, hint: string) {
    super(message, hint);
    this.name = 'ImageRefError';
  }
}

export function isImageName(name: string): boolean {
  return NAME.test(name) && !name.endsWith('.json') && !name.endsWith('.img');
}

/** Parses `NAME[:VERSION]`; `where` names the place the text came from (an option, a body field). */
export function parseImageRef(text: string, where: string): ImageRef {
  const m = /^([^:]+)(?::(\d+))?$/.exec(text);
  if (!m || !isImageName(m[1]!))
    throw new ImageRefError(
      `${where}: "${text}" is not an image reference`,
      'give NAME or NAME:VERSION, e.g. dom0 or dom0:3 (a name is letters, digits, ".", "_" and "-")',
    );
  return m[2] === undefined ? { name: m[1]! } : { name: m[1]!, version: Number(m[2]) };
}

export function formatImageRef(m: Pick<ImageManifest, 'name' | 'version'>): string {
  return `${m.name}:${m.version}`;
}

export class ImageCatalogue {
  constructor(readonly imagesDir: string) {}

  /** Every version of every image, by name then version; versions whose image file is gone are left out. */
  async list(): Promise<ImageManifest[]> {
    const entries = await readdir(this.imagesDir, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return [];
      throw e;
    });
    const out: ImageManifest[] = [];
    for (const e of entries) {
      if (e.isDirectory() && isImageName(e.name)) out.push(...(await this.versions(e.name)));
      else if (e.isFile() && e.name.endsWith('.json') && isImageName(e.name.slice(0, -5))) {
        const legacy = await this.readLegacy(e.name.slice(0, -5));
        if (legacy) out.push(legacy);
      }
    }
    return out.sort((a, b) => a.name.localeCompare(b.name) || a.version - b.version);
  }

  /** The versions of one image, oldest first (the legacy unversioned manifest as version 0). */
  async versions(name: string): Promise<ImageManifest[]> {
    const dir = join(this.imagesDir, name);
    const files = await readdir(dir).catch(() => [] as string[]);
    const out: ImageManifest[] = [];
    const legacy = await this.readLegacy(name);
    if (legacy) out.push(legacy);
    for (const f of files) {
      const m = /^(\d+)\.json$/.exec(f);
      if (!m) continue;
      const manifest = await this.readVersioned(join(dir, f), name, Number(m[1]));
      if (manifest && (await this.fileExists(manifest))) out.push(manifest);
    }
    return out.sort((a, b) => a.version - b.version);
  }

  /**
   * The manifest `ref` names (its newest version when none is given). Unknown names and versions are
   * refused with what the catalogue holds, so the operator can pick one.
   */
  async resolve(ref: ImageRef | string, where = 'image'): Promise<ImageManifest> {
    const r = typeof ref === 'string' ? parseImageRef(ref, where) : ref;
    const versions = await this.versions(r.name);
    if (!versions.length) {
      const names = [...new Set((await this.list()).map((m) => m.name))];
      throw new ImageRefError(
        `${where}: no image "${r.name}" in ${this.imagesDir}`,
        names.length
          ? `images there: ${names.join(', ')} (xsm image list shows their versions)`
          : 'the catalogue is empty: build one with scripts/build-image or capture one with xsm image capture',
      );
    }
    if (r.version === undefined) return versions[versions.length - 1]!;
    const v = versions.find((m) => m.version === r.version);
    if (!v)
      throw new ImageRefError(
        `${where}: image "${r.name}" has no version ${r.version}`,
        `its versions: ${versions.map((m) => m.version).join(', ')}`,
      );
    return v;
  }

  /**
   * Records `file` (relative to the images directory, already in place) as the next version of `name`
   * and returns its manifest. Safe against concurrent callers: the version is taken by link(2).
   */
  async add(
    name: string,
    file: string,
    meta: { bytes: number; sha256: string; source: ImageSource; description: string; captureJob?: string },
  ): Promise<ImageManifest> {
    if (!isImageName(name))
      throw new ImageRefError(`image name "${name}" is not valid`, 'use letters, digits, ".", "_" and "-"');
    const dir = join(this.imagesDir, name);
    await mkdir(dir, { recursive: true });
    for (let attempt = 0; attempt < 100; attempt++) {
      const version = (await this.highestVersion(name)) + 1;
      const createdAt = new Date().toISOString();
      const manifest: ImageManifest = {
        name,
        version,
        file,
        bytes: meta.bytes,
        sha256: meta.sha256,
        createdAt,
        builtAt: createdAt,
        source: meta.source,
        description: meta.description,
        ...(meta.captureJob ? { captureJob: meta.captureJob } : {}),
      };
      const tmp = join(dir, `.manifest-${randomBytes(4).toString('hex')}.tmp`);
      await writeFile(tmp, JSON.stringify(manifest, null, 1) + '\n');
      try {
        await link(tmp, join(dir, `${version}.json`));
        return manifest;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      } finally {
        await unlink(tmp).catch(() => {});
      }
    }
    throw new Error(`${dir}: could not take a version number after 100 tries (is something creating manifests?)`);
  }

  /** The version a capture job registered, if it got that far (what makes its register step idempotent). */
  async byCaptureJob(name: string, jobId: string): Promise<ImageManifest | undefined> {
    return (await this.versions(name)).find((m) => m.captureJob === jobId);
  }

  private async highestVersion(name: string): Promise<number> {
    const files = await readdir(join(this.imagesDir, name)).catch(() => [] as string[]);
    let max = 0;
    for (const f of files) {
      const m = /^(\d+)\.(?:json|img)$/.exec(f);
      if (m) max = Math.max(max, Number(m[1]));
    }
    return max;
  }

  private async fileExists(m: ImageManifest): Promise<boolean> {
    return stat(join(this.imagesDir, m.file)).then(
      (s) => s.isFile(),
      () => false,
    );
  }

  private async readVersioned(path: string, name: string, version: number): Promise<ImageManifest | undefined> {
    const raw = await readFile(path, 'utf8').catch(() => undefined);
    if (raw === undefined) return undefined;
    let m: Partial<ImageManifest>;
    try {
      m = JSON.parse(raw) as Partial<ImageManifest>;
    } catch {
      throw new Error(`${path}: not valid JSON; fix or remove this image manifest`);
    }
    if (typeof m.file !== 'string' || typeof m.sha256 !== 'string' || typeof m.bytes !== 'number')
      throw new Error(`${path}: an image manifest needs file, bytes and sha256; fix or remove it`);
    return { ...m, name, version } as ImageManifest;
  }

  private async readLegacy(name: string): Promise<ImageManifest | undefined> {
    const path = join(this.imagesDir, `${name}.json`);
    const m = await this.readVersioned(path, name, 0);
    if (!m || !(await this.fileExists(m))) return undefined;
    return { ...m, source: m.source ?? { kind: 'built' }, createdAt: m.createdAt ?? m.builtAt };
  }
}
