/**
 * What an attacker with a signing key (or none) does to a bundle: edit its config,
 * rewrite the blobs that name it (config, bundle manifest, index.json), recompute
 * SHA256SUMS and sign it again, so checksums and signature are all sound and only the
 * content is hostile. The result is a directory bundle, which install and verify read
 * as they read a tar.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { formatChecksums } from '../../src/core/layout/checksums.js';
import type { BundleConfig } from '../../src/core/layout/types.js';
import { readSecretKey } from '../../src/core/sign/keys.js';
import { sign } from '../../src/core/sign/minisign.js';

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/**
 * Extracts `tarPath` into `outDir`, applies `edit` to the bundle config and seals the
 * result again: signed with `secretKeyPath`, or left unsigned (its signature removed)
 * when none is given.
 */
export async function tamperBundle(
  tarPath: string,
  outDir: string,
  edit: (config: BundleConfig & Record<string, unknown>) => void,
  secretKeyPath?: string,
): Promise<string> {
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  await execa('tar', ['-xf', tarPath, '-C', outDir]);
  const blob = (digest: string) => path.join(outDir, 'blobs', 'sha256', digest.replace(/^sha256:/, ''));
  const putBlob = async (bytes: Buffer): Promise<{ digest: string; size: number }> => {
    const hex = sha256(bytes);
    await writeFile(path.join(outDir, 'blobs', 'sha256', hex), bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  };

  const index = JSON.parse(await readFile(path.join(outDir, 'index.json'), 'utf8')) as {
    manifests: Descriptor[];
  };
  const entry = index.manifests.find((m) => m.annotations?.['dev.apertus.role'] === 'bundle');
  if (!entry) throw new Error(`${tarPath} has no bundle manifest`);
  const manifest = JSON.parse(await readFile(blob(entry.digest), 'utf8')) as { config: Descriptor };
  const config = JSON.parse(await readFile(blob(manifest.config.digest), 'utf8')) as BundleConfig &
    Record<string, unknown>;
  edit(config);

  await rm(blob(manifest.config.digest));
  manifest.config = { ...manifest.config, ...(await putBlob(Buffer.from(JSON.stringify(config)))) };
  await rm(blob(entry.digest));
  Object.assign(entry, await putBlob(Buffer.from(JSON.stringify(manifest))));
  await writeFile(path.join(outDir, 'index.json'), JSON.stringify(index));

  // SHA256SUMS over every file but itself and its signature, as the writer makes it.
  await rm(path.join(outDir, 'SHA256SUMS.minisig'), { force: true });
  const files = (await readdir(outDir, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => path.relative(outDir, path.join(e.parentPath, e.name)))
    .filter((p) => p !== 'SHA256SUMS');
  const entries = await Promise.all(
    files.map(async (p) => ({ path: p, digest: `sha256:${sha256(await readFile(path.join(outDir, p)))}` })),
  );
  const sums = Buffer.from(formatChecksums(entries));
  await writeFile(path.join(outDir, 'SHA256SUMS'), sums);
  if (secretKeyPath)
    await writeFile(path.join(outDir, 'SHA256SUMS.minisig'), sign(sums, await readSecretKey(secretKeyPath)));
  return outDir;
}

/** The same bundle with its signature replaced: garbage, or a signature by another key. */
export async function resignBundle(
  dir: string,
  signature: 'garbage' | { secretKeyPath: string },
): Promise<void> {
  const sums = await readFile(path.join(dir, 'SHA256SUMS'));
  await writeFile(
    path.join(dir, 'SHA256SUMS.minisig'),
    signature === 'garbage'
      ? 'untrusted comment: not a signature\nRWQgYXJiYWdlIHNpZ25hdHVyZQ==\ntrusted comment: nothing\nbm90aGluZw==\n'
      : sign(sums, await readSecretKey(signature.secretKeyPath)),
  );
}
