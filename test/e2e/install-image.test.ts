/**
 * The acceptance journey for images (issue 3): a recipe names an image in a registry
 * (Debian's docker-registry on 127.0.0.1), `apertus bundle` pins and stores it,
 * `apertus install` over SSH into an air-gapped test host loads it with podman from the
 * host's blob store, and podman runs it with no network.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoHost, type DemoHost } from '../../src/core/demo-host/demo-host.js';
import { hostTargetArgs, sshE2eRequirement } from '../helpers/demo-host.js';
import {
  buildTestImages,
  PODMAN_RUN_OFFLINE,
  podmanRequirement,
  registryRequirement,
  startRegistry,
  type TestRegistry,
} from '../helpers/registry.js';
import { runCli } from '../helpers/run-cli.js';

const needs = [sshE2eRequirement(), registryRequirement(), podmanRequirement()];
const ready = needs.every((n) => n.ok);

describe.skipIf(!ready)(`an image through bundle and install ${needs.map((n) => n.why).join(' ')}`, () => {
  let work: string;
  let registry: TestRegistry;
  let host: DemoHost;
  let marker: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-install-image-'));
    const images = await buildTestImages(path.join(work, 'images'));
    marker = images.marker;
    registry = await startRegistry({ dir: path.join(work, 'registry') });
    await registry.push(images.layout, 'multi', 'apertus/hello:1', { all: true });
    host = await createDemoHost({ workDir: path.join(work, 'host'), mode: 'netns' });
  });

  afterAll(async () => {
    await execa('podman', ['rmi', '--force', `${registry?.host}/apertus/hello:1`], { reject: false });
    await host?.teardown();
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('bundles the pinned image, installs it over SSH, and podman runs it offline', async () => {
    const recipe = path.join(work, 'recipe');
    await import('node:fs/promises').then((fs) => fs.mkdir(recipe, { recursive: true }));
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
    const cache = path.join(work, 'cache');
    const dry = await runCli([
      'bundle',
      recipe,
      '-o',
      path.join(work, 'out'),
      '--cache-dir',
      cache,
      '--dry-run',
      '--json',
    ]);
    expect(dry.exitCode, dry.stdout).toBe(0);
    const planned = JSON.parse(dry.stdout).plan.components[0];
    expect(planned).toMatchObject({
      kind: 'image',
      revision: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
    });
    expect(planned.source).toBe(`${registry.host}/apertus/hello@${planned.revision}`);

    const bundled = await runCli([
      'bundle',
      recipe,
      '-o',
      path.join(work, 'out'),
      '--cache-dir',
      cache,
      '--json',
    ]);
    expect(bundled.exitCode, bundled.stdout).toBe(0);
    const bundlePath = JSON.parse(bundled.stdout).path;

    const installed = await runCli([
      'install',
      bundlePath,
      ...hostTargetArgs(host),
      '--allow-unsigned',
      '--json',
    ]);
    expect(installed.exitCode, installed.stdout).toBe(0);
    expect(JSON.parse(installed.stdout)).toMatchObject({ ok: true, checks: [] });

    const run = await execa('podman', [...PODMAN_RUN_OFFLINE, `${registry.host}/apertus/hello:1`]);
    expect(run.stdout.trim()).toBe(marker);
  });
});
