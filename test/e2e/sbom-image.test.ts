/**
 * An image component in the SBOM: an image built with umoci, pushed to Debian's
 * docker-registry on 127.0.0.1 as a multi-platform index, bundled with `apertus bundle`,
 * and read back with `apertus inspect --sbom`: a `container` with a `pkg:oci` purl pinned
 * to the platform manifest's digest, and the licence from its org.opencontainers.image.licenses label.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Spec, Validation } from '@cyclonedx/cyclonedx-library';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildTestImages,
  registryRequirement,
  startRegistry,
  type TestRegistry,
} from '../helpers/registry.js';
import { runCli } from '../helpers/run-cli.js';

const requirement = registryRequirement();

describe.skipIf(!requirement.ok)(`the SBOM of an image component ${requirement.why}`, () => {
  let work: string;
  let registry: TestRegistry;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-sbom-image-'));
    const images = await buildTestImages(path.join(work, 'images'));
    registry = await startRegistry({ dir: path.join(work, 'registry') });
    await registry.push(images.layout, 'multi', 'apertus/hello:1', { all: true });
  });
  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('is a container with the pinned digest, platform and licence label', async () => {
    const recipe = path.join(work, 'recipe');
    await mkdir(recipe, { recursive: true });
    await writeFile(
      path.join(recipe, 'apertus.yaml'),
      [
        'apiVersion: apertus.dev/v1',
        'kind: Bundle',
        'metadata:',
        '  name: hello-image',
        '  version: 1.0.0',
        'components:',
        '  - name: hello',
        '    kind: image',
        `    source: oci:${registry.host}/apertus/hello:1`,
        '    insecure: true',
        '',
      ].join('\n'),
    );
    const bundled = await runCli([
      'bundle',
      recipe,
      '-o',
      path.join(work, 'out'),
      '--cache-dir',
      path.join(work, 'cache'),
      '--json',
    ]);
    expect(bundled.exitCode, bundled.stdout).toBe(0);
    const bundlePath = JSON.parse(bundled.stdout).path as string;
    const summary = JSON.parse((await runCli(['inspect', bundlePath, '--json'])).stdout);
    const component = summary.components[0];
    expect(component.provenance).toMatchObject({ platform: 'linux/amd64', license: 'Apache-2.0' });
    const digest = component.manifestDigest as string;
    expect(component.provenance.revision).toBe(digest);

    const inspected = await runCli(['inspect', bundlePath, '--sbom']);
    expect(inspected.exitCode, inspected.stderr).toBe(0);
    const validator = new Validation.JsonStrictValidator(Spec.Version.v1dot6);
    expect(await validator.validate(inspected.stdout)).toBeNull();
    const bom = JSON.parse(inspected.stdout);
    expect(bom.components).toEqual([
      expect.objectContaining({
        type: 'container',
        'bom-ref': 'component:hello',
        name: `${registry.host}/apertus/hello`,
        version: '1',
        purl: `pkg:oci/hello@sha256%3A${digest.slice('sha256:'.length)}?arch=amd64&repository_url=${registry.host}/apertus/hello&tag=1`,
        hashes: [{ alg: 'SHA-256', content: digest.slice('sha256:'.length) }],
        licenses: [{ license: { id: 'Apache-2.0' } }],
      }),
      // The apertus CLI the bundle carries under apertus/ (bundle without --no-cli).
      expect.objectContaining({ type: 'application', 'bom-ref': 'cli:apertus', name: 'apertus' }),
    ]);
  });
});
