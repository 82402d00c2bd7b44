// The image catalogue (versions, references, refusals that list what exists) and the reading of rsync's
// itemized changes. Plain files in a temporary images directory; no root needed.

import test from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageCatalogue, parseImageRef } from '../../src/deploy/image-catalogue.ts';
import { readManifest, writeManifest } from '../../src/deploy/image.ts';
import { HOST_SYNC_EXCLUDES, parseItemizedChanges } from '../../src/deploy/host-sync.ts';

async function imagesDir(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'xsm-catalogue-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function addImage(dir: string, name: string, content: string) {
  await mkdir(join(dir, name), { recursive: true });
  const file = `${name}/${content}.img`;
  await writeFile(join(dir, file), content);
  return writeManifest(dir, name, file, content);
}

test('versions count up per name; a bare name means the newest, NAME:V that version', async (t) => {
  const dir = await imagesDir(t);
  const a1 = await addImage(dir, 'dom0', 'a');
  const a2 = await addImage(dir, 'dom0', 'b');
  const b1 = await addImage(dir, 'golden', 'c');
  t.deepEqual([a1.version, a2.version, b1.version], [1, 2, 1]);
  t.deepEqual(a1.source, { kind: 'built' });
  // sha256 of "a"
  t.is(a1.sha256, 'ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb');
  t.is(a1.bytes, 1);
  const cat = new ImageCatalogue(dir);
  t.deepEqual(
    (await cat.list()).map((m) => `${m.name}:${m.version}`),
    ['dom0:1', 'dom0:2', 'golden:1'],
  );
  t.is((await cat.resolve('dom0')).version, 2);
  t.is((await cat.resolve('dom0:1')).file, 'dom0/a.img');
  t.is((await readManifest(dir, 'golden')).description, 'c');
});

test('an unknown image or version is refused with what the catalogue has', async (t) => {
  const dir = await imagesDir(t);
  await addImage(dir, 'dom0', 'a');
  await addImage(dir, 'dom0', 'b');
  await addImage(dir, 'golden', 'c');
  const cat = new ImageCatalogue(dir);
  const e1 = await t.throwsAsync(cat.resolve('dom1', '--image'));
  t.regex(e1.message, /^--image: no image "dom1" in .*\(images there: dom0, golden/);
  const e2 = await t.throwsAsync(cat.resolve('dom0:7', '--image'));
  t.regex(e2.message, /^--image: image "dom0" has no version 7 \(its versions: 1, 2\)/);
  const empty = new ImageCatalogue(join(dir, 'nothing-here'));
  t.regex(
    (await t.throwsAsync(empty.resolve('dom0'))).message,
    /catalogue is empty: build one with scripts\/build-image/,
  );
  for (const bad of ['', 'dom0:', 'dom0:x', ':3', '../etc', 'a b', 'dom0:1:2'])
    t.throws(() => parseImageRef(bad, '--image'), { message: /--image: .* is not an image reference/ }, bad);
  t.deepEqual(parseImageRef('dom0:12', 'x'), { name: 'dom0', version: 12 });
});

test('concurrent additions to one name never share a version', async (t) => {
  const dir = await imagesDir(t);
  await mkdir(join(dir, 'dom0'));
  await Promise.all([...'abcdefgh'].map((c) => writeFile(join(dir, 'dom0', `${c}.img`), c)));
  const added = await Promise.all([...'abcdefgh'].map((c) => writeManifest(dir, 'dom0', `dom0/${c}.img`, c)));
  t.deepEqual(
    added.map((m) => m.version).sort((a, b) => a - b),
    [1, 2, 3, 4, 5, 6, 7, 8],
  );
});

test('an unversioned manifest from before the catalogue is version 0; a version whose file is gone is not listed', async (t) => {
  const dir = await imagesDir(t);
  await writeFile(join(dir, 'old.img'), 'x');
  await writeFile(
    join(dir, 'old.json'),
    JSON.stringify({ name: 'old', file: 'old.img', bytes: 1, sha256: 'f'.repeat(64), builtAt: '2026-01-01T00:00:00Z' }),
  );
  const cat = new ImageCatalogue(dir);
  const old = await cat.resolve('old');
  t.is(old.version, 0);
  t.is(old.createdAt, '2026-01-01T00:00:00Z');
  t.deepEqual(old.source, { kind: 'built' });
  const next = await addImage(dir, 'old', 'y');
  t.is(next.version, 1);
  await rm(join(dir, 'old/y.img'));
  t.deepEqual(
    (await cat.versions('old')).map((m) => m.version),
    [0],
  );
});

test("rsync's itemized changes become files added, changed and deleted with their bytes", (t) => {
  const out = [
    '.d..t......|4096|./',
    '*deleting  |0|etc/gone',
    '*deleting  |0|opt/old/',
    '.d..t......|4096|etc/',
    '>f..t......|3|etc/a',
    '>f.st......|1200|usr/bin/tool',
    '>f+++++++++|10|etc/new|file',
    'cL+++++++++|1|etc/l -> a',
    'cd+++++++++|4096|usr/share/new/',
    'hf+++++++++|10|etc/hardlink => etc/new|file',
    '',
  ].join('\n');
  const s = parseItemizedChanges(out);
  t.is(s.added, 4);
  t.is(s.changed, 2, 'a directory whose times alone differ is not listed');
  t.is(s.deleted, 2);
  t.is(s.bytes, 3 + 1200 + 10, 'a hard link writes no data');
  t.deepEqual(
    s.changes.filter((c) => c.change === 'delete').map((c) => [c.kind, c.path]),
    [
      ['file', '/etc/gone'],
      ['dir', '/opt/old'],
    ],
  );
  t.true(s.changes.some((c) => c.change === 'add' && c.kind === 'link' && c.path === '/etc/l'));
  t.true(s.changes.some((c) => c.path === '/etc/new|file'));
});

test('host identity and boot-time paths are never synced', (t) => {
  for (const p of [
    '/etc/ssh/ssh_host_*',
    '/etc/hostname',
    '/etc/machine-id',
    '/var/lib/dbus/machine-id',
    '/etc/xsm/host-agent.env',
    '/proc/*',
    '/sys/*',
    '/dev/*',
    '/run/*',
    '/tmp/*',
  ])
    t.true(HOST_SYNC_EXCLUDES.includes(p), p);
});
