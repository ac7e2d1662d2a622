import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBundle } from '../../src/core/layout/bundle-reader.js';
import { entryByteSource } from '../../src/core/layout/entry-source.js';
import { readTarIndex } from '../../src/core/layout/tar-index.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'apertus-entry-source-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A bundle directory holding one tar (as a tar layer blob would be), made by GNU tar. */
async function bundleDirWithTar(name: string, tarArgs: string[], cwd: string): Promise<string> {
  const dir = path.join(work, name);
  await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  await execa('tar', ['-cf', path.join(dir, 'blobs', 'sha256', 'layer'), ...tarArgs], { cwd });
  return dir;
}

describe('a tar layer read where it lies inside a bundle', () => {
  it('indexes a well-formed layer through the entry source', async () => {
    const src = path.join(work, 'src');
    await mkdir(path.join(src, 'lib'), { recursive: true });
    await writeFile(path.join(src, 'server.mjs'), 'export {};\n');
    await writeFile(path.join(src, 'lib', 'a.js'), 'a'.repeat(3000));
    const reader = await openBundle(await bundleDirWithTar('good', ['server.mjs', 'lib'], src));
    try {
      const entry = reader.get('blobs/sha256/layer');
      expect(entry).toBeDefined();
      const entries = await readTarIndex(entryByteSource(reader, entry as NonNullable<typeof entry>));
      expect(entries.map((e) => e.path).sort()).toEqual(['lib', 'lib/a.js', 'server.mjs']);
    } finally {
      await reader.close();
    }
  });

  it('refuses a layer whose entry climbs out of its directory, naming the entry', async () => {
    const src = path.join(work, 'hostile', 'inner');
    await mkdir(src, { recursive: true });
    await writeFile(path.join(work, 'hostile', 'escape.sh'), 'echo pwned\n');
    // -P keeps the '../' that GNU tar would otherwise strip: what a hostile layer holds.
    const reader = await openBundle(await bundleDirWithTar('hostile-bundle', ['-P', '../escape.sh'], src));
    try {
      const entry = reader.get('blobs/sha256/layer');
      await expect(
        readTarIndex(entryByteSource(reader, entry as NonNullable<typeof entry>)),
      ).rejects.toMatchObject({
        code: 'bundle-unsafe-entry',
        message: expect.stringContaining('../escape.sh'),
      });
    } finally {
      await reader.close();
    }
  });
});
