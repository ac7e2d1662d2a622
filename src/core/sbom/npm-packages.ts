/**
 * The npm packages a tar layer carries, found the way Node finds them: a package is a
 * directory `node_modules/<name>` or `node_modules/@scope/<name>` with a package.json.
 * Read from the files that go into the layer, so the SBOM lists exactly what ships
 * (the runtime's node-llama-cpp closure, and any service that brings its node_modules).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';

export interface ShippedNpmPackage {
  name: string;
  version: string;
  license: string | null;
  /** Where the package sits inside the layer: 'node_modules/@scope/name'. */
  path: string;
  /** SHA-256 of the package's files as shipped (packageTreeHash), hex. */
  sha256: string;
}

/** How packageTreeHash is computed, for the SBOM property that names it. */
export const PACKAGE_TREE_HASH_METHOD =
  "sha256 of `sha256sum` lines ('<hex>  <path>') of the package's files, nested node_modules/ excluded, sorted by path (LC_ALL=C)";

/** SHA-256 of one file, hex, read as a stream. */
export async function fileSha256(source: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(source)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * One SHA-256 for an installed package directory, which has no tarball to hash: the hash
 * of the `sha256sum` listing of its files, so anyone can recompute it with standard tools:
 * `cd PKG && find . -type f ! -path './node_modules/*' | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum | sha256sum`.
 */
export async function packageTreeHash(
  root: string,
  entries: ReadonlyArray<{ path: string; source: string }>,
): Promise<string> {
  const files = entries
    .map((entry) => ({ relative: entry.path.slice(root.length + 1), source: entry.source }))
    .filter(
      (f, i) =>
        entries[i]?.path.startsWith(`${root}/`) === true &&
        !f.relative.startsWith('node_modules/') &&
        f.relative !== '',
    )
    .sort((a, b) => (a.relative < b.relative ? -1 : a.relative > b.relative ? 1 : 0));
  const listing = createHash('sha256');
  for (const file of files) listing.update(`${await fileSha256(file.source)}  ${file.relative}\n`);
  return listing.digest('hex');
}

/** 'node_modules/a/node_modules/@s/b/package.json' -> 'node_modules/a/node_modules/@s/b'. */
const PACKAGE_ROOT_MANIFEST = /^((?:.*\/)?node_modules\/(?:@[^/]+\/)?[^/@][^/]*)\/package\.json$/;

/** npm's `license` field; the legacy `{type}` object and `licenses` array forms too. */
function licenseOf(manifest: Record<string, unknown>): string | null {
  const { license, licenses } = manifest;
  if (typeof license === 'string' && license.trim() !== '') return license.trim();
  if (license !== null && typeof license === 'object') {
    const type = (license as { type?: unknown }).type;
    if (typeof type === 'string' && type.trim() !== '') return type.trim();
  }
  if (Array.isArray(licenses)) {
    const types = licenses
      .map((entry) => (entry as { type?: unknown } | null)?.type)
      .filter((type): type is string => typeof type === 'string' && type.trim() !== '');
    if (types.length === 1) return types[0] ?? null;
    if (types.length > 1) return `(${types.join(' OR ')})`;
  }
  return null;
}

export async function shippedNpmPackages(
  entries: ReadonlyArray<{ path: string; source: string }>,
): Promise<ShippedNpmPackage[]> {
  const packages: ShippedNpmPackage[] = [];
  for (const entry of entries) {
    const root = PACKAGE_ROOT_MANIFEST.exec(entry.path)?.[1];
    if (root === undefined) continue;
    let manifest: Record<string, unknown>;
    try {
      manifest = JSON.parse(await readFile(entry.source, 'utf8')) as Record<string, unknown>;
    } catch {
      // Not a package manifest Node could read either; it describes no package.
      continue;
    }
    if (typeof manifest.name !== 'string' || typeof manifest.version !== 'string') continue;
    packages.push({
      name: manifest.name,
      version: manifest.version,
      license: licenseOf(manifest),
      path: root,
      sha256: await packageTreeHash(root, entries),
    });
  }
  return packages.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
