/**
 * The container path for real (issue 5, point 1): our CPU runtime server packaged as an
 * OCI image by apertus itself (no daemon, no base image), pushed to a real registry,
 * bundled as an image component next to the tiny model, installed over SSH into an
 * air-gapped netns host, and run by podman there with the flags src/core/services/container.ts
 * renders: model directory mounted read-only, port published on the host's 127.0.0.1.
 * /health and one chat completion are asked from the host's side, through the SSH transport.
 */
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDemoHost, createDemoHost, type DemoHost } from '../../src/core/demo-host/demo-host.js';
import { httpRequest } from '../../src/core/host/http-over-transport.js';
import type { Transport } from '../../src/core/host/transport.js';
import type { ContainerServiceSpec } from '../../src/core/layout/types.js';
import { containerName, probeContainerHost } from '../../src/core/services/container.js';
import { containerStopScript, startContainerService } from '../../src/core/services/container-service.js';
import { buildRuntimeImage, RUNTIME_IMAGE_PORT } from '../../src/core/services/runtime-image.js';
import { sshE2eRequirement } from '../helpers/demo-host.js';
import {
  podmanRequirement,
  registryRequirement,
  startRegistry,
  type TestRegistry,
} from '../helpers/registry.js';
import { runCli } from '../helpers/run-cli.js';

const needs = [sshE2eRequirement(), registryRequirement(), podmanRequirement()];
const ready = needs.every((n) => n.ok);

/** What this machine's podman needs (DESIGN.md section 7): runc, and ulimits it may set. */
const HOST_ENGINE_ARGS = ['--runtime', 'runc', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

/**
 * `ip netns exec`, which starts the test host's sshd, mounts a fresh /sys for the namespace,
 * so the cgroup hierarchies a real host has under /sys/fs/cgroup are missing in the sessions
 * and runc refuses to create containers. Mount this machine's controllers again there (in the
 * host's own mount namespace only) so the host looks like a real one; a no-op where they are.
 */
const MOUNT_CGROUPS = `set -e
[ -n "$(ls /sys/fs/cgroup 2>/dev/null)" ] && exit 0
mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup
if grep -q ' cgroup2 ' /proc/1/mounts && ! grep -q ' cgroup ' /proc/1/mounts; then
  mount -t cgroup2 cgroup2 /sys/fs/cgroup; exit 0
fi
for c in $(awk '$3 == "cgroup" { print $4 }' /proc/1/mounts | tr ',' '\\n' | grep -vE '^(rw|ro|relatime|nosuid|nodev|noexec)$' | grep -v = | sort -u); do
  mkdir -p /sys/fs/cgroup/$c; mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
done
mkdir -p /sys/fs/cgroup/systemd; mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd || true
`;

async function waitForHealth(transport: Transport, port: number, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const response = await httpRequest(transport, { port, path: '/health', timeoutMs: 2000 });
      last = `${response.status} ${response.body}`;
      if (response.status === 200) return response.body;
    } catch (error) {
      last = (error as Error).message;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`no healthy answer on port ${port} within ${timeoutMs} ms: ${last}`);
}

describe.skipIf(!ready)(`the runtime as a container image ${needs.map((n) => n.why).join(' ')}`, () => {
  let work: string;
  let registry: TestRegistry;
  let host: DemoHost;
  let transport: Transport | undefined;
  const serviceName = `rt-${process.pid}`;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-container-runtime-'));
    registry = await startRegistry({ dir: path.join(work, 'registry') });
    host = await createDemoHost({ workDir: path.join(work, 'host'), mode: 'netns' });
  }, 60_000);

  afterAll(async () => {
    if (transport) {
      await transport.exec(containerStopScript(serviceName), { reject: false });
      await transport.close();
    }
    await execa('podman', ['rmi', '--force', `${registry?.host}/apertus/runtime:1`], { reject: false });
    await host?.teardown();
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('builds the image deterministically, bundles, installs over SSH, and podman serves the model', async () => {
    const layout = path.join(work, 'layout');
    const image = await buildRuntimeImage({ projectRoot: process.cwd(), layoutDir: layout, tag: 'runtime' });
    const again = await buildRuntimeImage({
      projectRoot: process.cwd(),
      layoutDir: path.join(work, 'layout-again'),
      tag: 'runtime',
    });
    expect(again.manifest.digest).toBe(image.manifest.digest);
    expect(image.layers).toHaveLength(3);
    await registry.push(layout, 'runtime', 'apertus/runtime:1');

    const recipe = path.join(work, 'recipe');
    await mkdir(path.join(recipe, 'model'), { recursive: true });
    await copyFile('bundles/demo/model/tiny-llama.gguf', path.join(recipe, 'model', 'tiny-llama.gguf'));
    await writeFile(
      path.join(recipe, 'apertus.yaml'),
      [
        'apiVersion: apertus.dev/v1',
        'kind: Bundle',
        'metadata:',
        '  name: runtime-image',
        '  version: 1.0.0',
        'components:',
        '  - name: server',
        '    kind: image',
        `    source: oci:${registry.host}/apertus/runtime:1`,
        '    insecure: true',
        '  - name: model',
        '    kind: model',
        '    source: file:model',
        '    license: Apache-2.0',
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
    expect(bundled.exitCode, bundled.stdout + bundled.stderr).toBe(0);
    const installed = await runCli([
      'install',
      JSON.parse(bundled.stdout).path,
      '--host',
      host.address as string,
      '-i',
      host.identityFile as string,
      '--known-hosts',
      host.knownHostsFile as string,
      '--root',
      host.root,
      '--json',
    ]);
    expect(installed.exitCode, installed.stdout + installed.stderr).toBe(0);

    transport = await connectDemoHost(host);
    const mounted = await transport.exec('sh -s', { stdin: MOUNT_CGROUPS, reject: false });
    expect(mounted.exitCode, mounted.stderr).toBe(0);
    const engine = await probeContainerHost(transport);
    expect(engine).toMatchObject({ engine: 'podman', gpu: 'none', systemd: false });

    const port = 18080;
    // The service as a bundle records a `runtime: container` entry, started the way
    // release-control.ts starts it (no systemd here: a detached container).
    const service: ContainerServiceSpec = {
      name: serviceName,
      runtime: 'container',
      image: { component: 'server', reference: `${registry.host}/apertus/runtime:1` },
      port,
      containerPort: RUNTIME_IMAGE_PORT,
      bind: '127.0.0.1',
      args: [
        '--model',
        '/models/model/tiny-llama.gguf',
        '--model-id',
        'apertus-demo-tiny',
        '--host',
        '0.0.0.0',
        '--port',
        String(RUNTIME_IMAGE_PORT),
        '--threads',
        '1',
        '--context-size',
        '256',
      ],
      env: {},
      modelComponent: 'model',
      healthPath: '/health',
    };
    await startContainerService(transport, {
      service,
      releaseDir: path.join(host.root, 'current'),
      root: host.root,
      manager: 'supervisor',
      host: engine,
      engineArgs: HOST_ENGINE_ARGS,
    });

    expect(JSON.parse(await waitForHealth(transport, port, 60_000))).toMatchObject({ status: 'ok' });
    const chat = await httpRequest(transport, {
      port,
      path: '/v1/chat/completions',
      json: {
        model: 'apertus-demo-tiny',
        messages: [{ role: 'user', content: 'Say hello.' }],
        max_tokens: 4,
      },
      timeoutMs: 30_000,
    });
    expect(chat.status, chat.body).toBe(200);
    const answer = JSON.parse(chat.body);
    expect(answer).toMatchObject({ object: 'chat.completion', model: 'apertus-demo-tiny' });
    expect(answer.choices).toHaveLength(1);
    expect(answer.usage.completion_tokens).toBeGreaterThan(0);
    expect(answer.usage.completion_tokens).toBeLessThanOrEqual(4);

    // The model mount is read-only inside the container.
    const write = await transport.exec(
      `${engine.program} exec ${containerName(serviceName)} /apertus/runtime/bin/node -e "require('fs').writeFileSync('/models/model/x','')"`,
      { reject: false },
    );
    expect(write.exitCode).not.toBe(0);
    expect(write.stderr).toMatch(/EROFS|read-only/i);

    const stopped = await transport.exec(containerStopScript(serviceName), { reject: false });
    expect(stopped.exitCode).toBe(0);
    const left = await transport.exec(
      `${engine.program} ps --all --filter name=^${containerName(serviceName)}$ --format '{{.Names}}'`,
    );
    expect(left.stdout.trim()).toBe('');
  }, 300_000);
});
