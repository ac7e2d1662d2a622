/**
 * The apertus CLI a bundle carries under apertus/ (bundle/cli-files.ts) as one SBOM
 * component: the installer that runs inside the air gap is software the operator runs as
 * root, so it is listed like the rest: its Node binary (SHA-256 of the file), its own
 * files (one tree hash) and every npm package of its closure (ssh2 and the rest) with
 * licence, purl and tree hash, recomputable with sha256sum.
 */
import type { CliFiles } from '../bundle/cli-files.js';
import { CLI_DIR, CLI_PATHS } from '../layout/names.js';
import { type CycloneDxComponent, sha256Hash } from './cyclonedx.js';
import { npmLibraryComponent } from './npm-component.js';
import { fileSha256, PACKAGE_TREE_HASH_METHOD, packageTreeHash, shippedNpmPackages } from './npm-packages.js';
import { cycloneDxLicenses } from './spdx-license.js';

export async function cliComponent(cli: CliFiles): Promise<CycloneDxComponent> {
  const ref = 'cli:apertus';
  const nested: CycloneDxComponent[] = [];
  const node = cli.files.find((f) => f.path === CLI_PATHS.node);
  if (node) {
    nested.push({
      type: 'application',
      'bom-ref': `${ref}/${CLI_PATHS.node}`,
      name: 'node',
      version: cli.node.replace(/^v/, ''),
      description: 'Node.js, which runs the apertus CLI inside the air gap',
      hashes: [sha256Hash(await fileSha256(node.source))],
      licenses: cycloneDxLicenses('MIT'),
      properties: [{ name: 'apertus:file', value: `${CLI_DIR}/${CLI_PATHS.node}` }],
    });
  }
  for (const npm of await shippedNpmPackages(cli.files)) {
    nested.push(npmLibraryComponent(npm, ref, `${CLI_DIR}/${npm.path}`));
  }
  return {
    type: 'application',
    'bom-ref': ref,
    name: 'apertus',
    version: cli.version,
    description: 'the apertus CLI and its Node runtime, under apertus/ in the bundle tar',
    // Its own files under apertus/cli/ (package.json, bin/, dist/, templates/), the npm
    // closure excluded. No purl: apertus is not taken from a package registry.
    hashes: [sha256Hash(await packageTreeHash(CLI_PATHS.cliDir, cli.files))],
    components: nested,
    properties: [
      { name: 'apertus:path', value: `${CLI_DIR}/` },
      { name: 'apertus:hash-method', value: PACKAGE_TREE_HASH_METHOD },
    ],
  };
}
