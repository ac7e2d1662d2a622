import { createHash } from 'node:crypto';
import { appendFile, copyFile, mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBundle } from '../../src/core/bundle/write-bundle.js';
import { openFileByteSource } from '../../src/core/layout/byte-source.js';
import { readTarIndex } from '../../src/core/layout/tar-index.js';
import { generateKeyPair, readSecretKey } from '../../src/core/sign/keys.js';
import { type BundleVerification, verifyBundle } from '../../src/core/verify/verify-bundle.js';
import { fixtureBytes, makeBundleFixture } from '../helpers/bundle-fixture.js';

let dir: string;
let signedTar: string;
let unsignedTar: string;
let publicKeyPath: string;
let otherKeyPath: string;
const weightsBlob = `blobs/sha256/${createHash('sha256')
  .update(fixtureBytes('weights', 300 * 1024 + 17))
  .digest('hex')}`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'apertus-verify-'));
  const plan = await makeBundleFixture(join(dir, 'fixture'));
  const keys = await generateKeyPair(join(dir, 'keys', 'release'));
  publicKeyPath = keys.publicKeyPath;
  otherKeyPath = (await generateKeyPair(join(dir, 'keys', 'other'))).publicKeyPath;
  const secretKey = await readSecretKey(keys.secretKeyPath);
  signedTar = (await writeBundle(plan, { outDir: join(dir, 'signed'), secretKey })).path;
  unsignedTar = (await writeBundle(plan, { outDir: join(dir, 'unsigned') })).path;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function bad(result: BundleVerification) {
  return result.results.filter((entry) => entry.status !== 'ok');
}

/** A copy of the signed bundle with one bit of the weights blob flipped inside the tar. */
async function flippedCopy(name: string): Promise<string> {
  const tar = join(dir, name);
  await copyFile(signedTar, tar);
  const source = await openFileByteSource(tar);
  const entry = (await readTarIndex(source)).find((item) => item.path === weightsBlob);
  await source.close();
  expect(entry).toBeDefined();
  const handle = await open(tar, 'r+');
  const position = (entry?.dataOffset ?? 0) + 1000;
  const byte = Buffer.alloc(1);
  await handle.read(byte, 0, 1, position);
  byte[0] = (byte[0] ?? 0) ^ 0x01;
  await handle.write(byte, 0, 1, position);
  await handle.close();
  return tar;
}

async function extract(tar: string, name: string): Promise<string> {
  const out = join(dir, name);
  await mkdir(out);
  await execa('tar', ['-xf', tar, '-C', out]);
  return out;
}

describe('verifyBundle', () => {
  it('passes a good signed bundle, every file checked once', async () => {
    const hashed: number[] = [];
    const result = await verifyBundle(signedTar, {
      publicKeyPath,
      onProgress: (event) => event.bytes && hashed.push(event.bytes.done),
    });
    expect(bad(result)).toEqual([]);
    expect(result).toMatchObject({ ok: true, signed: true });
    expect(result.manifestDigest).toMatch(/^sha256:/);
    // oci-layout, index.json, SHA256SUMS, the signature and 13 blobs (the SBOM and the model config among them).
    expect(result.results).toHaveLength(17);
    expect(result.results.find((entry) => entry.subject === 'SHA256SUMS.minisig')?.detail).toContain(
      'trusted comment',
    );
  });

  it('without a key says the signature was not checked, and still checks integrity', async () => {
    const result = await verifyBundle(signedTar);
    expect(result).toMatchObject({ ok: true, signed: false });
    expect(bad(result)).toEqual([
      { subject: 'SHA256SUMS.minisig', status: 'unsigned', detail: expect.stringContaining('not checked') },
    ]);
    expect(bad(await verifyBundle(unsignedTar))).toMatchObject([
      { status: 'unsigned', detail: 'the bundle is not signed' },
    ]);
  });

  it('fails an unsigned bundle when a key is given, and a signature by another key', async () => {
    const unsigned = await verifyBundle(unsignedTar, { publicKeyPath });
    expect(unsigned.ok).toBe(false);
    expect(bad(unsigned)).toMatchObject([{ subject: 'SHA256SUMS.minisig', status: 'missing' }]);
    const other = await verifyBundle(signedTar, { publicKeyPath: otherKeyPath });
    expect(bad(other)).toMatchObject([{ subject: 'SHA256SUMS.minisig', status: 'bad-signature' }]);
  });

  it('names the one blob whose byte was flipped inside the tar, and nothing else changes', async () => {
    const tar = await flippedCopy('flipped.tar');
    const clean = await verifyBundle(signedTar, { publicKeyPath });
    const flipped = await verifyBundle(tar, { publicKeyPath });
    expect(flipped.ok).toBe(false);
    expect(bad(flipped)).toEqual([
      { subject: weightsBlob, status: 'digest-mismatch', detail: expect.stringContaining('SHA256SUMS says') },
    ]);
    const others = (result: BundleVerification) =>
      result.results.filter((item) => item.subject !== weightsBlob);
    expect(others(flipped)).toEqual(others(clean));
  });

  it('with deferFromBytes leaves large files unhashed, yet each must be listed under its own name', async () => {
    const flipped = await verifyBundle(await flippedCopy('deferred.tar'), {
      publicKeyPath,
      deferFromBytes: 100_000,
    });
    expect(bad(flipped)).toEqual([]);
    expect(flipped).toMatchObject({ ok: true, signed: true, deferred: { files: 1, bytes: 300 * 1024 + 17 } });

    const extra = await extract(unsignedTar, 'deferred-extra');
    await writeFile(join(extra, 'notes.bin'), fixtureBytes('notes', 200_000));
    const sums = join(extra, 'SHA256SUMS');
    const hex = weightsBlob.slice('blobs/sha256/'.length);
    await writeFile(
      sums,
      (await readFile(sums, 'utf8')).replace(`${hex}  ${weightsBlob}`, `${'1'.repeat(64)}  ${weightsBlob}`),
    );
    const result = await verifyBundle(extra, { deferFromBytes: 100_000 });
    expect(result.ok).toBe(false);
    expect(
      bad(result)
        .map((item) => `${item.subject} ${item.status}`)
        .sort(),
    ).toEqual(['SHA256SUMS.minisig unsigned', `${weightsBlob} digest-mismatch`, 'notes.bin unlisted']);
  });

  it('reports an unlisted file, a missing file and a tampered SHA256SUMS in an extracted bundle', async () => {
    const extra = await extract(signedTar, 'extra');
    await writeFile(join(extra, 'notes.txt'), 'added later\n');
    expect(bad(await verifyBundle(extra, { publicKeyPath }))).toEqual([
      { subject: 'notes.txt', status: 'unlisted', detail: expect.any(String) },
    ]);

    const missing = await extract(signedTar, 'missing');
    await rm(join(missing, weightsBlob));
    const missingResult = await verifyBundle(missing, { publicKeyPath });
    expect(bad(missingResult)).toEqual([
      { subject: weightsBlob, status: 'missing', detail: expect.any(String) },
    ]);
    expect(missingResult.results.find((item) => item.subject === weightsBlob)?.detail).toContain(
      'layer "weights.bin"',
    );

    const tampered = await extract(signedTar, 'tampered');
    await appendFile(join(tampered, 'SHA256SUMS'), `${'0'.repeat(64)}  notes.txt\n`);
    await writeFile(join(tampered, 'notes.txt'), 'x');
    const tamperedResult = await verifyBundle(tampered, { publicKeyPath });
    expect(tamperedResult.ok).toBe(false);
    expect(tamperedResult.signed).toBe(false);
    expect(bad(tamperedResult).map((item) => [item.subject, item.status])).toEqual([
      ['SHA256SUMS.minisig', 'bad-signature'],
      ['notes.txt', 'digest-mismatch'],
    ]);
  });

  it('checks blob names even without SHA256SUMS', async () => {
    const bare = await extract(unsignedTar, 'bare');
    await rm(join(bare, 'SHA256SUMS'));
    await writeFile(join(bare, weightsBlob), 'replaced');
    const result = await verifyBundle(bare);
    const statuses = Object.fromEntries(bad(result).map((item) => [item.subject, item.status]));
    expect(statuses).toMatchObject({
      SHA256SUMS: 'missing',
      [weightsBlob]: 'digest-mismatch',
      'oci-layout': 'unlisted',
      'index.json': 'unlisted',
    });
  });

  it('returns a hostile tar as a result, and throws only for input it cannot read', async () => {
    const work = join(dir, 'evil', 'inner');
    await mkdir(work, { recursive: true });
    await writeFile(join(dir, 'evil', 'x'), 'x');
    await execa('tar', ['-cPf', join(dir, 'evil.tar'), '../x'], { cwd: work });
    const result = await verifyBundle(join(dir, 'evil.tar'));
    expect(result.ok).toBe(false);
    expect(result.results).toEqual([
      { subject: join(dir, 'evil.tar'), status: 'invalid', detail: expect.stringContaining('"../x"') },
    ]);

    await expect(verifyBundle(join(dir, 'nope.tar'))).rejects.toMatchObject({
      kind: 'user',
      code: 'bundle-not-found',
    });
    await writeFile(join(dir, 'text.tar'), 'not a tar at all'.repeat(64));
    await expect(verifyBundle(join(dir, 'text.tar'))).rejects.toMatchObject({ code: 'bundle-not-tar' });
    const truncated = join(dir, 'truncated.tar');
    await writeFile(truncated, (await readFile(signedTar)).subarray(0, 100_000));
    expect((await verifyBundle(truncated)).results).toMatchObject([
      { status: 'invalid', detail: /ends inside entry/ },
    ]);
  });
});
