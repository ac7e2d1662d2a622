import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, open, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspectBundle } from '../../src/core/bundle/inspect-bundle.js';
import { splitBundle } from '../../src/core/bundle/split-bundle.js';
import { type BundleWritePlan, writeBundle } from '../../src/core/bundle/write-bundle.js';
import { ApertusError } from '../../src/core/errors.js';
import { openBundle } from '../../src/core/layout/bundle-reader.js';
import { concatByteSources, openFileByteSource } from '../../src/core/layout/byte-source.js';
import { readSplitIndex, type SplitIndex } from '../../src/core/layout/split-index.js';
import { readTarIndex } from '../../src/core/layout/tar-index.js';
import { generateKeyPair, readSecretKey, type SecretKey } from '../../src/core/sign/keys.js';
import { verifyBundle } from '../../src/core/verify/verify-bundle.js';
import { makeBundleFixture } from '../helpers/bundle-fixture.js';

let dir: string;
let plan: BundleWritePlan;
let secretKey: SecretKey;
let publicKeyPath: string;
let whole: Buffer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'apertus-split-'));
  plan = await makeBundleFixture(join(dir, 'fixture'));
  const keys = await generateKeyPair(join(dir, 'keys', 'release'));
  secretKey = await readSecretKey(keys.secretKeyPath);
  publicKeyPath = keys.publicKeyPath;
  whole = await readFile((await writeBundle(plan, { outDir: join(dir, 'whole'), secretKey })).path);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function joinParts(indexPath: string, index: SplitIndex): Promise<Buffer> {
  const directory = join(indexPath, '..');
  return Buffer.concat(await Promise.all(index.parts.map((part) => readFile(join(directory, part.file)))));
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

describe('writeBundle with split', () => {
  // Odd sizes put part boundaries inside tar headers (pax ones too) and inside the
  // duplicate blob the writer cuts off again, where the part hashing is hardest.
  it.each([1025, 3000, 7 * 512 + 13, 65536])(
    'writes %i-byte parts that join to the unsplit tar, each hashed in the index',
    async (partSize) => {
      const outDir = join(dir, `parts-${partSize}`);
      const written = await writeBundle(plan, { outDir, secretKey, split: { partSize } });
      expect(written.path).toBe(join(outDir, 'fixture-1.0.0.tar.parts.json'));
      expect(written.size).toBe(whole.length);
      const index = await readSplitIndex(written.path);
      expect(written.split?.index).toEqual(index);
      expect(index).toMatchObject({
        kind: 'apertus-split-bundle',
        formatVersion: 1,
        tar: { file: 'fixture-1.0.0.tar', size: whole.length },
        partSize,
      });
      expect(index.parts).toHaveLength(Math.ceil(whole.length / partSize));
      expect((await joinParts(written.path, index)).equals(whole)).toBe(true);
      for (const part of index.parts) {
        expect(part.file).toBe(`fixture-1.0.0.tar.part-${String(part.number).padStart(3, '0')}`);
        expect(part.sha256).toBe(sha256(whole.subarray(part.offset, part.offset + part.size)));
      }
      // Nothing else: no whole tar, no partial files left behind.
      const files = await readdir(outDir);
      expect(files.sort()).toEqual(
        [
          ...index.parts.map((part) => part.file),
          'fixture-1.0.0.tar.parts.json',
          'fixture-1.0.0.tar.parts.sha256',
        ].sort(),
      );
      // The medium checks itself with standard tools.
      const sums = await execa('sha256sum', ['--strict', '-c', 'fixture-1.0.0.tar.parts.sha256'], {
        cwd: outDir,
      });
      expect(sums.stdout.split('\n')).toHaveLength(index.parts.length);
      expect(sums.stdout).not.toContain('FAILED');
    },
  );

  it('replaces an earlier split of the same bundle, removing parts it no longer has', async () => {
    const outDir = join(dir, 'rewrite');
    await writeBundle(plan, { outDir, split: { partSize: 4096 } });
    const written = await writeBundle(plan, { outDir, secretKey, split: { partSize: 65536 } });
    const index = await readSplitIndex(written.path);
    expect((await readdir(outDir)).filter((name) => name.includes('.part-'))).toHaveLength(
      index.parts.length,
    );
    expect((await verifyBundle(written.path, { publicKeyPath })).ok).toBe(true);
  });

  it('refuses more than 999 parts, and a failed run leaves the previous split bundle as it was', async () => {
    const outDir = join(dir, 'too-many');
    const good = await writeBundle(plan, { outDir, split: { partSize: 65536 } });
    const before = (await readdir(outDir)).sort();
    const error = await writeBundle(plan, { outDir, split: { partSize: 300 } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApertusError);
    expect(error).toMatchObject({ code: 'bundle-too-many-parts', hint: expect.stringContaining('larger') });
    expect((await readdir(outDir)).sort()).toEqual(before);
    expect((await verifyBundle(good.path)).ok).toBe(true);
  });
});

describe('reading a split bundle in place', () => {
  let indexPath: string;
  let index: SplitIndex;
  beforeAll(async () => {
    indexPath = (await writeBundle(plan, { outDir: join(dir, 'read'), secretKey, split: { partSize: 3000 } }))
      .path;
    index = await readSplitIndex(indexPath);
  });

  it('reads any range across part boundaries, by read() and by stream', async () => {
    const sources = await Promise.all(
      index.parts.map((part) => openFileByteSource(join(dir, 'read', part.file))),
    );
    const source = concatByteSources(sources, 'parts');
    try {
      expect(source.size).toBe(whole.length);
      const ranges: Array<[number, number]> = [
        [0, 1],
        [2999, 2], // the last byte of part 1 and the first of part 2
        [3000, 3000], // exactly part 2
        [2990, 3020], // three parts
        [1, whole.length - 2],
        [whole.length - 1, 1],
        [whole.length, 0],
      ];
      for (let seed = 0; seed < 40; seed++) {
        const start = (seed * 7919) % whole.length;
        ranges.push([start, Math.min(whole.length - start, (seed * 104729) % 20000)]);
      }
      for (const [start, length] of ranges) {
        expect((await source.read(start, length)).equals(whole.subarray(start, start + length))).toBe(true);
        const chunks: Buffer[] = [];
        for await (const chunk of source.createReadStream(start, start + length))
          chunks.push(chunk as Buffer);
        expect(Buffer.concat(chunks).equals(whole.subarray(start, start + length))).toBe(true);
      }
      await expect(source.read(whole.length - 10, 11)).rejects.toMatchObject({ code: 'bundle-truncated' });
    } finally {
      await source.close();
    }
  });

  it('opens by the index, or by the tar name when only the parts exist, with the entries of the tar', async () => {
    const tarSource = await openFileByteSource(join(dir, 'whole', 'fixture-1.0.0.tar'));
    const tarIndex = await readTarIndex(tarSource);
    await tarSource.close();
    for (const path of [indexPath, join(dir, 'read', 'fixture-1.0.0.tar')]) {
      const reader = await openBundle(path);
      try {
        expect(reader).toMatchObject({ format: 'split', path: indexPath, size: whole.length });
        expect(reader.entries.map((entry) => entry.path)).toEqual(
          tarIndex.filter((entry) => entry.type === 'file').map((entry) => entry.path),
        );
        for (const entry of tarIndex.filter((e) => e.type === 'file')) {
          const expected = whole.subarray(entry.dataOffset, entry.dataOffset + entry.size);
          const chunks: Buffer[] = [];
          for await (const chunk of reader.createReadStream(entry.path)) chunks.push(chunk as Buffer);
          expect(Buffer.concat(chunks).equals(expected)).toBe(true);
          if (entry.size > 6000) {
            const range = reader.createReadStream(entry.path, { start: 2500, end: 5600 });
            const got: Buffer[] = [];
            for await (const chunk of range) got.push(chunk as Buffer);
            expect(Buffer.concat(got).equals(expected.subarray(2500, 5601))).toBe(true);
          }
        }
      } finally {
        await reader.close();
      }
    }
    const summary = await inspectBundle(indexPath);
    expect(summary).toMatchObject({ format: 'split', name: 'fixture', totalSize: whole.length });
  });

  it('refuses a single part, pointing at the index', async () => {
    const error = await openBundle(join(dir, 'read', 'fixture-1.0.0.tar.part-002')).catch((e: unknown) => e);
    expect(error).toMatchObject({
      code: 'bundle-split-part',
      hint: `Pass the split bundle's index instead: ${indexPath}`,
    });
  });
});

describe('verifyBundle on a split bundle', () => {
  let indexPath: string;
  let index: SplitIndex;
  beforeAll(async () => {
    indexPath = (
      await writeBundle(plan, { outDir: join(dir, 'verify'), secretKey, split: { partSize: 65536 } })
    ).path;
    index = await readSplitIndex(indexPath);
  });

  /** A copy of the split bundle to damage. */
  async function copyOf(name: string): Promise<string> {
    const out = join(dir, name);
    await mkdir(out);
    for (const file of await readdir(join(dir, 'verify')))
      await copyFile(join(dir, 'verify', file), join(out, file));
    return out;
  }

  it('checks every part, then the contents read through the parts', async () => {
    const result = await verifyBundle(indexPath, { publicKeyPath });
    expect(result).toMatchObject({
      ok: true,
      signed: true,
      split: { index: indexPath, parts: index.parts.length, badParts: 0, contentsChecked: true },
    });
    const parts = result.results.slice(0, index.parts.length);
    expect(parts.map((r) => [r.subject, r.status])).toEqual(index.parts.map((p) => [p.file, 'ok']));
    expect(parts[1]?.detail).toBe(
      `part 2 of ${index.parts.length}: fixture-1.0.0.tar.part-002 sha256 matches the index`,
    );
    // The same files as the unsplit tar's verification, after the parts.
    const unsplit = await verifyBundle(join(dir, 'whole', 'fixture-1.0.0.tar'), { publicKeyPath });
    expect(result.results.slice(index.parts.length)).toEqual(unsplit.results);
    expect(unsplit.split).toBeNull();
  });

  it('names a corrupt part and what to do, and reads nothing else', async () => {
    const out = await copyOf('corrupt');
    const handle = await open(join(out, 'fixture-1.0.0.tar.part-002'), 'r+');
    await handle.write(Buffer.from('X'), 0, 1, 1000);
    await handle.close();
    const result = await verifyBundle(join(out, 'fixture-1.0.0.tar.parts.json'), { publicKeyPath });
    expect(result.ok).toBe(false);
    expect(result.split).toMatchObject({ badParts: 1, contentsChecked: false });
    const badResults = result.results.filter((r) => r.status !== 'ok');
    expect(badResults).toEqual([
      {
        subject: 'fixture-1.0.0.tar.part-002',
        status: 'digest-mismatch',
        detail: expect.stringMatching(
          new RegExp(
            `^part 2 of ${index.parts.length}: fixture-1\\.0\\.0\\.tar\\.part-002 digest mismatch \\(content sha256:[0-9a-f]{64}, the index says sha256:${index.parts[1]?.sha256}\\) — copy this part again from its medium$`,
          ),
        ),
      },
    ]);
  });

  it('names a missing part and a truncated one', async () => {
    const out = await copyOf('missing');
    const last = index.parts.at(-1);
    await rm(join(out, last?.file ?? ''));
    await truncate(join(out, 'fixture-1.0.0.tar.part-001'), 100);
    // By the tar name, as an operator would type it.
    const result = await verifyBundle(join(out, 'fixture-1.0.0.tar'));
    expect(result.ok).toBe(false);
    expect(result.results.filter((r) => r.status !== 'ok')).toEqual([
      {
        subject: 'fixture-1.0.0.tar.part-001',
        status: 'invalid',
        detail: `part 1 of ${index.parts.length}: fixture-1.0.0.tar.part-001 is 100 bytes, the index says 65536 — copy this part again from its medium`,
      },
      {
        subject: last?.file,
        status: 'missing',
        detail: `part ${index.parts.length} of ${index.parts.length}: ${last?.file} is missing — copy this part again from its medium`,
      },
    ]);
    // Readers that do not hash still name the part.
    await expect(openBundle(join(out, 'fixture-1.0.0.tar'))).rejects.toMatchObject({
      code: 'bundle-part-size',
      message: expect.stringContaining(
        `part 1 of ${index.parts.length}: fixture-1.0.0.tar.part-001 is 100 bytes`,
      ),
    });
    await copyFile(
      join(dir, 'verify', 'fixture-1.0.0.tar.part-001'),
      join(out, 'fixture-1.0.0.tar.part-001'),
    );
    await expect(openBundle(join(out, 'fixture-1.0.0.tar'))).rejects.toMatchObject({
      code: 'bundle-part-missing',
      message: expect.stringContaining(`part ${index.parts.length} of ${index.parts.length}: ${last?.file}`),
    });
  });

  it('reports a damaged index as a failed verification, not a crash', async () => {
    const out = await copyOf('bad-index');
    const path = join(out, 'fixture-1.0.0.tar.parts.json');
    const raw = JSON.parse(await readFile(path, 'utf8'));
    raw.parts[1].offset += 1;
    await writeFile(path, JSON.stringify(raw));
    const result = await verifyBundle(path);
    expect(result.ok).toBe(false);
    expect(result.results).toEqual([
      {
        subject: 'fixture-1.0.0.tar.parts.json',
        status: 'invalid',
        detail: `${path} is not a valid split-bundle index: part 2 starts at byte 65537, expected 65536`,
      },
    ]);
    raw.parts[1].offset -= 1;
    raw.parts[0].file = '../../etc/passwd';
    await writeFile(path, JSON.stringify(raw));
    expect((await verifyBundle(path)).results[0]?.detail).toContain('expected a plain file name');
    raw.parts[0].file = 'fixture-1.0.0.tar.part-001';
    raw.formatVersion = 2;
    await writeFile(path, JSON.stringify(raw));
    await expect(verifyBundle(path)).rejects.toMatchObject({ code: 'bundle-format-newer' });
  });
});

describe('splitBundle', () => {
  it('cuts an existing tar into the same parts and index as writeBundle with split', async () => {
    const tar = join(dir, 'whole', 'fixture-1.0.0.tar');
    const events: number[] = [];
    const result = await splitBundle(tar, {
      partSize: 3000,
      outDir: join(dir, 'resplit'),
      onProgress: (event) => event.bytes && events.push(event.bytes.done),
    });
    expect(result).toMatchObject({
      path: join(dir, 'resplit', 'fixture-1.0.0.tar.parts.json'),
      source: tar,
      name: 'fixture',
      version: '1.0.0',
    });
    expect(events.at(-1)).toBe(whole.length);
    const direct = await writeBundle(plan, {
      outDir: join(dir, 'direct'),
      secretKey,
      split: { partSize: 3000 },
    });
    expect(result.manifestDigest).toBe(direct.manifestDigest);
    expect(await readdir(join(dir, 'resplit'))).toEqual(await readdir(join(dir, 'direct')));
    for (const file of await readdir(join(dir, 'direct'))) {
      const same = (await readFile(join(dir, 'resplit', file))).equals(
        await readFile(join(dir, 'direct', file)),
      );
      expect(same, file).toBe(true);
    }
  });

  it('writes next to the tar by default, which stays the bundle by its own name', async () => {
    const out = join(dir, 'beside');
    await mkdir(out);
    await copyFile(join(dir, 'whole', 'fixture-1.0.0.tar'), join(out, 'fixture-1.0.0.tar'));
    const result = await splitBundle(join(out, 'fixture-1.0.0.tar'), { partSize: 65536 });
    expect(result.path).toBe(join(out, 'fixture-1.0.0.tar.parts.json'));
    const tar = await openBundle(join(out, 'fixture-1.0.0.tar'));
    expect(tar.format).toBe('tar');
    await tar.close();
    expect((await verifyBundle(result.path, { publicKeyPath })).ok).toBe(true);
  });

  it('refuses what is not a bundle tar', async () => {
    const notTar = join(dir, 'not-a-tar');
    await writeFile(notTar, Buffer.alloc(4096, 1));
    await expect(splitBundle(notTar, { partSize: 65536 })).rejects.toMatchObject({ code: 'bundle-not-tar' });
    const split = join(dir, 'verify', 'fixture-1.0.0.tar.parts.json');
    await expect(splitBundle(split, { partSize: 65536 })).rejects.toMatchObject({ code: 'split-not-tar' });
  });
});
