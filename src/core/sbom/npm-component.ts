/**
 * One shipped npm package as a CycloneDX library component: name, version, licence, purl,
 * and the package's tree hash with the method that recomputes it. The bundled CLI and the
 * runtime's node_modules closure list their packages the same way.
 */
import { type CycloneDxComponent, sha256Hash } from './cyclonedx.js';
import { PACKAGE_TREE_HASH_METHOD, type ShippedNpmPackage } from './npm-packages.js';
import { npmPurl } from './purl.js';
import { cycloneDxLicenses } from './spdx-license.js';

/** `parentRef` is the bom-ref the package sits under; `location` where it lies in the bundle. */
export function npmLibraryComponent(
  npm: ShippedNpmPackage,
  parentRef: string,
  location: string,
): CycloneDxComponent {
  const licenses = cycloneDxLicenses(npm.license);
  return {
    type: 'library',
    'bom-ref': `${parentRef}/${npm.path}`,
    name: npm.name,
    version: npm.version,
    ...(licenses.length > 0 ? { licenses } : {}),
    hashes: [sha256Hash(npm.sha256)],
    purl: npmPurl(npm.name, npm.version),
    properties: [
      { name: 'apertus:path', value: location },
      { name: 'apertus:hash-method', value: PACKAGE_TREE_HASH_METHOD },
    ],
  };
}
