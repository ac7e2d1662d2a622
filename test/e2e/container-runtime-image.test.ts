/**
 * The container path for real (issue 5, point 1): our CPU runtime server packaged as an
 * OCI image by apertus itself (no daemon, no base image), pushed to a real registry, named
 * in a recipe as an image component next to the tiny model with a `runtime: container`
 * service that runs it, bundled, and installed with bin/apertus.js over SSH into an
 * air-gapped netns host. Install's own activation starts the container with podman there
 * (the host gives sessions cgroups and a containers.conf: src/core/demo-host/container-support.ts),
 * and its verification checks health, the model listed and a chat completion, since the
 * service declares the OpenAI API. A second release replaces the container; a third that
 * fails verification is rolled back to the second, container and all.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDemoHost, createDemoHost, type DemoHost } from '../../src/core/demo-host/demo-host.js';
import { httpRequest } from '../../src/core/host/http-over-transport.js';
import type { Transport } from '../../src/core/host/transport.js';
import { containerName } from '../../src/core/runtimes/container/engine.js';
import { hostTargetArgs, sshE2eRequirement } from '../helpers/demo-host.js';
import {
  podmanRequirement,
  registryRequirement,
  startRegistry,
  type TestRegistry,
} from '../helpers/registry.js';
import { buildRuntimeImage, RUNTIME_IMAGE_PORT } from '../helpers/runtime-image.js';

const needs = [sshE2eRequirement(), registryRequirement(), podmanRequirement()];
const ready = needs.every((n) => n.ok);
const BIN = path.resolve('bin/apertus.js');

async function apertus(args: string[]) {
  const result = await execa(process.execPath, [BIN, ...args], { reject: false, env: { CI: 'true' } });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

interface Check {
  id: string;
  service: string;
  status: string;
  detail: string;
}

interface Report {
  ok: boolean;
  checks: Check[];
  release: { dir: string; previous: string | null };
  rollback: { to: string | null; healthy: boolean } | null;
  services: Array<{ name: string; port: number; modelId: string; image?: string }>;
  offline: { interface: string; packets: number } | null;
}

describe.skipIf(!ready)(
  `container services through apertus install ${needs.map((n) => n.why).join(' ')}`,
  () => {
    let work: string;
    let registry: TestRegistry;
    let host: DemoHost;
    let transport: Transport;
    const service = `rt-${process.pid}`;
    const container = containerName(service);
    const port = 18080;
    const loadedImages = new Set<string>();

    beforeAll(async () => {
      work = await mkdtemp(path.join(os.tmpdir(), 'apertus-container-runtime-'));
      registry = await startRegistry({ dir: path.join(work, 'registry') });
      host = await createDemoHost({ workDir: path.join(work, 'host'), mode: 'netns' });
      transport = await connectDemoHost(host);
    }, 60_000);

    afterAll(async () => {
      await transport?.close();
      await host?.teardown();
      for (const image of loadedImages) await execa('podman', ['rmi', '--force', image], { reject: false });
      await registry?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });

    /** The recipe of one release: the runtime image serving the tiny model under `modelId`. */
    async function writeRecipe(version: string, modelId: string, declaredModelId = modelId): Promise<string> {
      const dir = path.join(work, `recipe-${version}`);
      await mkdir(path.join(dir, 'model'), { recursive: true });
      await copyFile('bundles/demo/model/tiny-llama.gguf', path.join(dir, 'model', 'tiny-llama.gguf'));
      const args = [
        '--model',
        '/models/model/tiny-llama.gguf',
        '--model-id',
        modelId,
        '--host',
        '0.0.0.0',
        '--port',
        String(RUNTIME_IMAGE_PORT),
        '--threads',
        '1',
        '--context-size',
        '256',
      ];
      await writeFile(
        path.join(dir, 'apertus.yaml'),
        [
          'apiVersion: apertus.dev/v1',
          'kind: Bundle',
          'metadata:',
          '  name: runtime-image',
          `  version: ${version}`,
          'components:',
          '  - name: server',
          '    kind: image',
          `    source: oci:${registry.host}/apertus/runtime:1`,
          '    insecure: true',
          '  - name: model',
          '    kind: model',
          '    source: file:model',
          '    license: Apache-2.0',
          'services:',
          `  - name: ${service}`,
          '    runtime: container',
          '    image: server',
          '    model: model',
          `    port: ${port}`,
          `    containerPort: ${RUNTIME_IMAGE_PORT}`,
          '    healthPath: /health',
          `    args: ${JSON.stringify(args)}`,
          '    openai:',
          `      modelId: ${declaredModelId}`,
          '',
        ].join('\n'),
      );
      const bundled = await apertus([
        'bundle',
        dir,
        '-o',
        path.join(work, 'out'),
        '--cache-dir',
        path.join(work, 'cache'),
        '--json',
      ]);
      expect(bundled.exitCode, bundled.stdout + bundled.stderr).toBe(0);
      return (JSON.parse(bundled.stdout) as { path: string }).path;
    }

    function install(bundle: string, extra: string[] = []) {
      return apertus(['install', bundle, ...hostTargetArgs(host), '--allow-unsigned', '--json', ...extra]);
    }

    /** The model id the running container was started with, from its arguments. */
    async function runningModelId(): Promise<string | undefined> {
      const inspected = await transport.exec(
        `podman inspect --format '{{.State.Status}} {{json .Config.Cmd}}' ${container}`,
        { reject: false },
      );
      expect(inspected.exitCode, inspected.stderr).toBe(0);
      const [status, ...rest] = inspected.stdout.trim().split(' ');
      expect(status).toBe('running');
      const cmd = JSON.parse(rest.join(' ')) as string[];
      return cmd[cmd.indexOf('--model-id') + 1];
    }

    async function containersNamed(): Promise<string[]> {
      const listed = await transport.exec(
        `podman ps --all --filter name=^${container}$ --format '{{.Names}} {{.Status}}'`,
      );
      return listed.stdout.trim().split('\n').filter(Boolean);
    }

    it('builds the runtime image deterministically and pushes it to the registry', async () => {
      const layout = path.join(work, 'layout');
      const image = await buildRuntimeImage({
        projectRoot: process.cwd(),
        layoutDir: layout,
        tag: 'runtime',
      });
      const again = await buildRuntimeImage({
        projectRoot: process.cwd(),
        layoutDir: path.join(work, 'layout-again'),
        tag: 'runtime',
      });
      expect(again.manifest.digest).toBe(image.manifest.digest);
      expect(image.layers).toHaveLength(3);
      await registry.push(layout, 'runtime', 'apertus/runtime:1');
    }, 300_000);

    it('install starts the container, verifies it as a model server, with nothing sent out', async () => {
      const installed = await install(await writeRecipe('1.0.0', 'tiny-v1'), [
        '--count-egress',
        host.egressInterface as string,
      ]);
      expect(installed.exitCode, installed.stdout + installed.stderr).toBe(0);
      const report = JSON.parse(installed.stdout) as Report;
      expect(report.ok).toBe(true);
      const mine = report.checks.filter((c) => c.service === service);
      expect(mine.map((c) => [c.id, c.status])).toEqual([
        ['verify.health', 'ok'],
        ['verify.models', 'ok'],
        ['verify.chat', 'ok'],
      ]);
      expect(report.offline).toEqual({ interface: host.egressInterface, packets: 0 });
      const entry = report.services.find((s) => s.name === service);
      expect(entry).toMatchObject({ port, modelId: 'tiny-v1' });
      expect(entry?.image).toContain(`${registry.host}/apertus/runtime`);
      if (entry?.image) loadedImages.add(entry.image);

      expect(await runningModelId()).toBe('tiny-v1');
      // The model mount is read-only inside the container.
      const write = await transport.exec(
        `podman exec ${container} /apertus/runtime/bin/node -e "require('fs').writeFileSync('/models/model/x','')"`,
        { reject: false },
      );
      expect(write.exitCode).not.toBe(0);
      expect(write.stderr).toMatch(/EROFS|read-only/i);
    }, 300_000);

    it('a second release replaces the container', async () => {
      const installed = await install(await writeRecipe('1.0.1', 'tiny-v2'));
      expect(installed.exitCode, installed.stdout + installed.stderr).toBe(0);
      const report = JSON.parse(installed.stdout) as Report;
      expect(report.release.previous).toMatch(/1\.0\.0/);
      expect(await runningModelId()).toBe('tiny-v2');
      expect(await containersNamed()).toHaveLength(1);
      const models = await httpRequest(transport, { port, path: '/v1/models', timeoutMs: 10_000 });
      expect((JSON.parse(models.body) as { data: Array<{ id: string }> }).data.map((m) => m.id)).toEqual([
        'tiny-v2',
      ]);
    }, 300_000);

    it('a release that fails verification is rolled back to the previous container', async () => {
      // The recipe says the image serves "tiny-declared", but it serves "tiny-v3": not listed.
      const installed = await install(await writeRecipe('1.0.2', 'tiny-v3', 'tiny-declared'));
      expect(installed.exitCode).not.toBe(0);
      const failure = JSON.parse(installed.stdout) as {
        error: { code: string; details: { report: Report } };
      };
      expect(failure.error.code).toBe('install-verification-failed');
      const { report } = failure.error.details;
      expect(report.checks.find((c) => c.id === 'verify.models')).toMatchObject({
        service,
        status: 'fail',
      });
      expect(report.rollback?.to).toMatch(/1\.0\.1/);
      expect(report.rollback?.healthy).toBe(true);
      expect(await runningModelId()).toBe('tiny-v2');
      expect(await containersNamed()).toHaveLength(1);
    }, 300_000);

    it('teardown of the host leaves no container behind', async () => {
      expect(await containersNamed()).toHaveLength(1);
      // podman mounts the container's network namespace under /run/netns in the sessions'
      // mount namespace: teardown must remove it there, or a stale file stays behind.
      const sandbox = await transport.exec(
        `podman inspect --format '{{.NetworkSettings.SandboxKey}}' ${container}`,
      );
      const netnsFile = sandbox.stdout.trim();
      expect(netnsFile).toMatch(/^\/run\/netns\//);
      await transport.close();
      await host.teardown();
      expect(existsSync(netnsFile)).toBe(false);
      const left = await execa('podman', [
        'ps',
        '--all',
        '--filter',
        `name=^${container}$`,
        '--format',
        '{{.Names}}',
      ]);
      expect(left.stdout.trim()).toBe('');
    }, 60_000);
  },
);
