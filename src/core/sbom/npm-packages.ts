/**
 * The npm packages a tar layer carries, found the way Node finds them: a package is a
 * directory `node_modules/<name>` or `node_modules/@scope/<name>` with a package.json.
 * Read from the files that go into the layer, so the SBOM lists exactly what ships
 * (the runtime's node-llama-cpp closure, and any service that brings its node_modules).
 */
import { readFile } from 'node:fs/promises';

export interface ShippedNpmPackage {
  name: string;
  version: string;
  license: string | null;
  /** Where the package sits inside the layer: 'node_modules/@scope/name'. */
  path: string;
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
    });
  }
  return packages.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
