/**
 * Edits an extracted bundle's documents as a forger would: the changed document stored
 * as a new blob, manifest and index re-linked to it, and (when asked) SHA256SUMS written
 * again over every file, so that the only thing wrong is what was changed.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { canonicalJsonBytes } from '../../src/core/layout/canonical-json.js';
import { formatChecksums } from '../../src/core/layout/checksums.js';
import { sha256Digest } from '../../src/core/layout/manifests.js';
import { CHECKSUMS_FILE, UNCHECKED_FILES } from '../../src/core/layout/names.js';

// biome-ignore lint/suspicious/noExplicitAny: bundle JSON is edited field by field, as a forger would.
export type Json = Record<string, any>;

export const blobFile = (root: string, digest: string) =>
  join(root, 'blobs/sha256', digest.slice('sha256:'.length));
const readJson = async (path: string): Promise<Json> => JSON.parse(await readFile(path, 'utf8'));

async function store(root: string, value: unknown): Promise<{ digest: string; size: number }> {
  const bytes = canonicalJsonBytes(value);
  const digest = sha256Digest(bytes);
  await writeFile(blobFile(root, digest), bytes);
  return { digest, size: bytes.length };
}

/** Rewrites the config (and optionally the first component's manifest), re-linking manifest and index. */
export async function forgeBundle(
  root: string,
  change: { config?: (config: Json) => void; component?: (manifest: Json) => void },
): Promise<{ configDigest: string }> {
  const index = await readJson(join(root, 'index.json'));
  const bundleEntry = index.manifests.find(
    (entry: Json) => entry.annotations['dev.apertus.role'] === 'bundle',
  );
  const manifest = await readJson(blobFile(root, bundleEntry.digest));
  const config = await readJson(blobFile(root, manifest.config.digest));
  if (change.component) {
    const component = config.components[0];
    const componentManifest = await readJson(blobFile(root, component.manifest.digest));
    change.component(componentManifest);
    const stored = await store(root, componentManifest);
    const indexEntry = index.manifests.find((entry: Json) => entry.digest === component.manifest.digest);
    Object.assign(component.manifest, stored);
    Object.assign(indexEntry, stored);
  }
  change.config?.(config);
  Object.assign(manifest.config, await store(root, config));
  Object.assign(bundleEntry, await store(root, manifest));
  await writeFile(join(root, 'index.json'), canonicalJsonBytes(index));
  return { configDigest: manifest.config.digest as string };
}

/** SHA256SUMS over every file of the extracted bundle as it now is. */
export async function rewriteChecksums(root: string): Promise<void> {
  const files = (await readdir(root, { recursive: true, withFileTypes: true }))
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)))
    .filter((path) => !UNCHECKED_FILES.has(path));
  const entries = await Promise.all(
    files.map(async (path) => ({ path, digest: sha256Digest(await readFile(join(root, path))) })),
  );
  await writeFile(join(root, CHECKSUMS_FILE), formatChecksums(entries));
}
