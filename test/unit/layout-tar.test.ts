import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openBundle } from '../../src/core/layout/bundle-reader.js';
import { openFileByteSource } from '../../src/core/layout/byte-source.js';
import {
  blobPath,
  confinedRelativePath,
  digestFromBlobPath,
  hexFromDigest,
} from '../../src/core/layout/names.js';
import { readTarIndex } from '../../src/core/layout/tar-index.js';
import {
  encodeTarHeader,
  planTarArchive,
  TarFileWriter,
  tarArchiveChunks,
  tarEnd,
} from '../../src/core/layout/tar-writer.js';
import { VERY_LONG_PATH } from '../helpers/bundle-fixture.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'apertus-tar-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function indexOf(path: string) {
  const source = await openFileByteSource(path);
  try {
    return await readTarIndex(source);
  } finally {
    await source.close();
  }
}

async function writeArchive(path: string, files: Parameters<typeof planTarArchive>[0]): Promise<void> {
  const plan = await planTarArchive(files, 'test');
  await pipeline(Readable.from(tarArchiveChunks(plan)), createWriteStream(path));
  expect((await stat(path)).size).toBe(plan.size);
}

describe('names', () => {
  it('validates digests and confines paths', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(blobPath(digest)).toBe(`blobs/sha256/${'a'.repeat(64)}`);
    expect(digestFromBlobPath(blobPath(digest))).toBe(digest);
    expect(digestFromBlobPath('blobs/sha256/xyz')).toBeUndefined();
    expect(() => hexFromDigest('sha256:ABC')).toThrow(/not a sha256 digest/);
    expect(confinedRelativePath('./a//b/')).toBe('a/b');
    for (const bad of ['../x', 'a/../../x', '/etc/passwd', '', '.', 'a\0b']) {
      expect(confinedRelativePath(bad), bad).toBeUndefined();
    }
  });
});

describe('tar writer', () => {
  it('writes the same bytes twice, and GNU tar extracts paths, modes and the pax long path', async () => {
    const a = await writeFile(join(dir, 'a.txt'), 'alpha\n').then(() => join(dir, 'a.txt'));
    const run = await writeFile(join(dir, 'run.sh'), '#!/bin/sh\n').then(() => join(dir, 'run.sh'));
    const files = [
      { source: run, path: 'bin/run.sh', mode: 0o755 as const },
      { source: a, path: VERY_LONG_PATH, mode: 0o644 as const },
      { source: a, path: 'a.txt', mode: 0o644 as const },
    ];
    await writeArchive(join(dir, 'one.tar'), files);
    await writeArchive(join(dir, 'two.tar'), [...files].reverse());
    expect((await readFile(join(dir, 'one.tar'))).equals(await readFile(join(dir, 'two.tar')))).toBe(true);

    const listing = await execa('tar', ['--numeric-owner', '-tvf', join(dir, 'one.tar')]);
    expect(listing.stdout).toContain('-rwxr-xr-x 0/0');
    expect(listing.stdout).toContain('1970-01-01');
    expect(listing.stdout).toContain(VERY_LONG_PATH);
    const out = join(dir, 'out');
    await mkdir(out);
    await execa('tar', ['-xf', join(dir, 'one.tar'), '-C', out]);
    expect((await stat(join(out, 'bin/run.sh'))).mode & 0o777).toBe(0o755);
    expect(await readFile(join(out, VERY_LONG_PATH), 'utf8')).toBe('alpha\n');

    const entries = await indexOf(join(dir, 'one.tar'));
    expect(entries.filter((e) => e.type === 'file').map((e) => e.path)).toEqual([
      'a.txt',
      'bin/run.sh',
      VERY_LONG_PATH,
    ]);
  });

  it('uses ustar prefix for paths over 100 bytes that can be split, pax only when needed', () => {
    const splittable = `${'d'.repeat(90)}/${'f'.repeat(90)}`;
    expect(encodeTarHeader({ path: splittable, type: 'file', size: 1, mode: 0o644 }).length).toBe(512);
    expect(encodeTarHeader({ path: 'x'.repeat(101), type: 'file', size: 1, mode: 0o644 }).length).toBe(1536);
    expect(encodeTarHeader({ path: 'ünïcode', type: 'file', size: 1, mode: 0o644 }).length).toBe(1536);
    expect(encodeTarHeader({ path: 'big', type: 'file', size: 2 ** 33, mode: 0o644 }).length).toBe(1536);
    expect(() => encodeTarHeader({ path: 'x', type: 'file', size: 1, mode: 0o600 as 0o644 })).toThrow(
      /0644 or 0755/,
    );
  });

  it('writes sizes over 8 GiB with a pax size record that GNU tar and the index read', async () => {
    // A sparse file: the data region is a hole, so this takes no disk space.
    const size = 9 * 2 ** 30 + 3;
    const path = join(dir, 'big.tar');
    const header = encodeTarHeader({ path: 'big.bin', type: 'file', size, mode: 0o644 });
    const handle = await open(path, 'w');
    await handle.write(header, 0, header.length, 0);
    const dataEnd = header.length + Math.ceil(size / 512) * 512;
    const end = tarEnd(dataEnd);
    await handle.write(end, 0, end.length, dataEnd);
    await handle.close();

    const entries = await indexOf(path);
    expect(entries).toMatchObject([{ path: 'big.bin', type: 'file', size, dataOffset: header.length }]);
    const listing = await execa('tar', ['-tvf', path]);
    expect(listing.stdout).toContain(String(size));
  });
});

describe('tar index', () => {
  it('reads GNU tar archives with long names in gnu, posix and ustar formats', async () => {
    const src = join(dir, 'src');
    const longDir = `${'n'.repeat(70)}/${'m'.repeat(70)}`;
    await mkdir(join(src, longDir), { recursive: true });
    await writeFile(join(src, longDir, 'file.txt'), 'long\n');
    await writeFile(join(src, 'short.txt'), 'short\n');
    for (const format of ['gnu', 'posix', 'ustar']) {
      const tar = join(dir, `${format}.tar`);
      await execa('tar', [`--format=${format}`, '-cf', tar, '-C', src, '.']);
      const bundle = await openBundle(tar);
      try {
        const paths = bundle.entries.map((e) => e.path).sort();
        expect(paths, format).toEqual([`${longDir}/file.txt`, 'short.txt']);
        expect(await bundle.readText(`${longDir}/file.txt`)).toBe('long\n');
        const chunks: Buffer[] = [];
        for await (const chunk of bundle.createReadStream('short.txt', { start: 1, end: 3 }))
          chunks.push(chunk);
        expect(Buffer.concat(chunks).toString()).toBe('hor');
      } finally {
        await bundle.close();
      }
    }
  });

  it('reads a base-256 size field', async () => {
    const path = join(dir, 'b256.tar');
    const header = encodeTarHeader({ path: 'x.txt', type: 'file', size: 5, mode: 0o644 });
    header.fill(0, 124, 136);
    header[124] = 0x80;
    header[135] = 5;
    header.fill(0x20, 148, 156);
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
    await writeFile(path, Buffer.concat([header, Buffer.from('hello'), Buffer.alloc(507), tarEnd(1024)]));
    expect(await indexOf(path)).toMatchObject([{ path: 'x.txt', size: 5 }]);
  });

  it("refuses '../x', absolute paths and links, naming the entry", async () => {
    const work = join(dir, 'work', 'inner');
    await mkdir(work, { recursive: true });
    await writeFile(join(dir, 'work', 'x'), 'escape\n');
    await execa('tar', ['-cPf', join(dir, 'dotdot.tar'), '../x'], { cwd: work });
    await expect(openBundle(join(dir, 'dotdot.tar'))).rejects.toMatchObject({
      code: 'bundle-unsafe-entry',
      message: expect.stringContaining('"../x"'),
      kind: 'user',
    });

    await execa('tar', ['-cPf', join(dir, 'abs.tar'), join(dir, 'work', 'x')]);
    await expect(openBundle(join(dir, 'abs.tar'))).rejects.toMatchObject({ code: 'bundle-unsafe-entry' });

    await symlink('/etc/passwd', join(work, 'link'));
    await execa('tar', ['-cf', join(dir, 'link.tar'), 'link'], { cwd: work });
    await expect(openBundle(join(dir, 'link.tar'))).rejects.toThrow(/"link".*symbolic link/);
    // The same rule holds for an extracted directory.
    await expect(openBundle(work)).rejects.toThrow(/"link".*symbolic link/);
  });

  it('reports a truncated tar and a file that is not a tar', async () => {
    const src = join(dir, 'big.bin');
    await writeFile(src, Buffer.alloc(10_000, 1));
    await execa('tar', ['-cf', join(dir, 'full.tar'), 'big.bin'], { cwd: dir });
    const full = await readFile(join(dir, 'full.tar'));
    await writeFile(join(dir, 'cut.tar'), full.subarray(0, 4096));
    await expect(openBundle(join(dir, 'cut.tar'))).rejects.toMatchObject({ code: 'bundle-truncated' });
    await writeFile(join(dir, 'text.tar'), 'x'.repeat(2048));
    await expect(openBundle(join(dir, 'text.tar'))).rejects.toMatchObject({
      code: 'bundle-not-tar',
      kind: 'user',
    });
    await expect(openBundle(join(dir, 'nope.tar'))).rejects.toMatchObject({ code: 'bundle-not-found' });
  });

  it('renames an entry in place without changing its length (content addressing)', async () => {
    const path = join(dir, 'renamed.tar');
    const writer = await TarFileWriter.create(path);
    const entry = await writer.writeEntry(
      { path: 'placeholder', type: 'file', size: 3, mode: 0o644 },
      Buffer.from('abc'),
    );
    await writer.renameEntry(entry, { path: 'final-name', type: 'file', size: 3, mode: 0o644 });
    const dropped = await writer.writeEntry(
      { path: 'dup', type: 'file', size: 1, mode: 0o644 },
      Buffer.from('z'),
    );
    await writer.truncate(dropped.headerOffset);
    await writer.finish();
    expect((await execa('tar', ['-tf', path])).stdout).toBe('final-name');
  });
});
