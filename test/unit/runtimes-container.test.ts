import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLocalTransport } from '../../src/core/host/local-transport.js';
import {
  type ContainerHost,
  type ContainerRunSpec,
  containerStartCommand,
  containerStopCommand,
  parseContainerProbe,
  probeContainerHost,
  renderContainerRun,
  renderContainerUnit,
} from '../../src/core/runtimes/container/engine.js';
import { adapterOf } from '../../src/core/runtimes/registry.js';
import { resolveServices } from '../../src/core/runtimes/resolve-services.js';
import { waitForHealth } from '../../src/core/runtimes/verify-services.js';
import { loadRecipe } from '../../src/core/spec/load-recipe.js';
import { startPgliteServer } from '../helpers/pglite-server.js';

const podmanCdi: ContainerHost = {
  engine: 'podman',
  program: '/usr/bin/podman',
  version: 'podman version 4.9.3',
  gpu: 'cdi',
  cdiSpecs: ['/etc/cdi/nvidia.yaml'],
  systemd: true,
};
const dockerNvidia: ContainerHost = {
  engine: 'docker',
  program: '/usr/bin/docker',
  version: 'Docker version 27.3.1',
  gpu: 'nvidia-runtime',
  cdiSpecs: [],
  systemd: false,
};

const spec: ContainerRunSpec = {
  service: 'llm',
  image: 'docker.io/vllm/vllm-openai:v0.20.0',
  entrypoint: ['vllm'],
  args: ['serve', '/models/Apertus-8B', '--served-model-name', "it's 100% $HOME"],
  env: { HF_HUB_OFFLINE: '1', A_SPACE: 'two words' },
  ports: [{ hostPort: 18000, containerPort: 8000, bind: '127.0.0.1' }],
  volumes: [
    { source: '/var/lib/apertus/current/model', target: '/models/Apertus-8B', readOnly: true },
    { source: '/var/lib/apertus/data/llm', target: '/var/cache/vllm', readOnly: false },
  ],
  gpus: 'all',
  restart: 'always',
  ipcHost: true,
};

describe('container run argv', () => {
  it('renders podman with CDI GPUs, loopback publish, read-only model, sorted env, explicit entrypoint', () => {
    expect(renderContainerRun(spec, podmanCdi)).toEqual([
      '/usr/bin/podman',
      'run',
      '--detach',
      '--name',
      'apertus-llm',
      '--restart',
      'always',
      '--ipc',
      'host',
      '--publish',
      '127.0.0.1:18000:8000/tcp',
      '--volume',
      '/var/lib/apertus/current/model:/models/Apertus-8B:ro',
      '--volume',
      '/var/lib/apertus/data/llm:/var/cache/vllm:rw',
      '--env',
      'A_SPACE=two words',
      '--env',
      'HF_HUB_OFFLINE=1',
      '--device',
      'nvidia.com/gpu=all',
      '--security-opt',
      'label=disable',
      '--entrypoint',
      'vllm',
      'docker.io/vllm/vllm-openai:v0.20.0',
      'serve',
      '/models/Apertus-8B',
      '--served-model-name',
      "it's 100% $HOME",
    ]);
  });

  it('renders docker with --gpus on the NVIDIA runtime, device lists, and a multi-word entrypoint', () => {
    const argv = renderContainerRun(
      {
        ...spec,
        gpus: [0, 1],
        entrypoint: ['python3', '-m', 'vllm.entrypoints.openai.api_server'],
        args: ['--model', '/m'],
      },
      dockerNvidia,
    );
    expect(argv.slice(argv.indexOf('--gpus'), argv.indexOf('--gpus') + 2)).toEqual([
      '--gpus',
      '"device=0,1"',
    ]);
    expect(argv.slice(argv.indexOf('--entrypoint'))).toEqual([
      '--entrypoint',
      'python3',
      'docker.io/vllm/vllm-openai:v0.20.0',
      '-m',
      'vllm.entrypoints.openai.api_server',
      '--model',
      '/m',
    ]);
  });

  it('publishes on 0.0.0.0 only when asked, and nothing with the host network', () => {
    const open = renderContainerRun(
      { ...spec, ports: [{ hostPort: 8080, containerPort: 8000, bind: '0.0.0.0' }] },
      podmanCdi,
    );
    expect(open).toContain('0.0.0.0:8080:8000/tcp');
    const hostNet = renderContainerRun({ ...spec, network: 'host' }, podmanCdi);
    expect(hostNet).not.toContain('--publish');
    expect(hostNet.slice(hostNet.indexOf('--network'), hostNet.indexOf('--network') + 2)).toEqual([
      '--network',
      'host',
    ]);
  });

  it('refuses GPUs where the engine has no way to them, naming the fix', () => {
    const bare: ContainerHost = { ...podmanCdi, gpu: 'none', cdiSpecs: [] };
    expect(() => renderContainerRun(spec, bare)).toThrow(/no NVIDIA CDI spec/);
    try {
      renderContainerRun(spec, bare);
    } catch (error) {
      expect((error as { hint: string }).hint).toContain('nvidia-ctk cdi generate');
    }
    expect(renderContainerRun({ ...spec, gpus: undefined }, bare)).not.toContain('--device');
  });

  it('refuses unsafe names, relative or ambiguous volume paths and bad ports', () => {
    expect(() => renderContainerRun({ ...spec, service: 'a b' }, podmanCdi)).toThrow(/cannot name/);
    expect(() =>
      renderContainerRun({ ...spec, volumes: [{ source: 'rel', target: '/m', readOnly: true }] }, podmanCdi),
    ).toThrow(/absolute path/);
    expect(() =>
      renderContainerRun({ ...spec, volumes: [{ source: '/a:b', target: '/m', readOnly: true }] }, podmanCdi),
    ).toThrow(/absolute path/);
    expect(() =>
      renderContainerRun(
        { ...spec, ports: [{ hostPort: 70000, containerPort: 1, bind: '127.0.0.1' }] },
        podmanCdi,
      ),
    ).toThrow(/hostPort/);
    expect(() => renderContainerRun({ ...spec, env: { 'A-B': '1' } }, podmanCdi)).toThrow(/environment/);
  });

  it('quotes every word in the start and stop shell lines', async () => {
    const line = containerStartCommand(spec, podmanCdi);
    expect(line).toContain(`'it'\\''s 100% $HOME'`);
    // sh reads the quoted line back into the same words.
    const { stdout } = await execa('sh', ['-c', `set -- ${line.split('\n')[1]}; printf '%s\\n' "$@"`]);
    expect(stdout.split('\n')).toEqual(renderContainerRun(spec, podmanCdi));
    expect(containerStopCommand('llm', podmanCdi)).toBe(
      [
        '/usr/bin/podman stop --time 10 apertus-llm >/dev/null 2>&1 || true',
        '/usr/bin/podman rm --force apertus-llm >/dev/null 2>&1 || true',
      ].join('\n'),
    );
  });
});

describe('container probe', () => {
  it('parses podman with a CDI spec and systemd', () => {
    expect(
      parseContainerProbe(
        'engine=podman\nprogram=/usr/bin/podman\nversion=podman version 5.2.1\ncdi=/etc/cdi/nvidia.yaml\ncdi=/var/run/cdi/nvidia.yaml\nsystemd=1\n',
      ),
    ).toEqual({
      engine: 'podman',
      program: '/usr/bin/podman',
      version: 'podman version 5.2.1',
      gpu: 'cdi',
      cdiSpecs: ['/etc/cdi/nvidia.yaml', '/var/run/cdi/nvidia.yaml'],
      systemd: true,
    });
  });

  it('parses docker with the NVIDIA runtime, and nothing at all', () => {
    expect(
      parseContainerProbe(
        'engine=docker\nprogram=/usr/bin/docker\nversion=Docker version 27.3.1\nnvidia_runtime=1\n',
      ),
    ).toMatchObject({ engine: 'docker', gpu: 'nvidia-runtime', systemd: false });
    expect(parseContainerProbe('')).toBeUndefined();
  });

  it.skipIf(!existsSync('/usr/bin/podman'))(
    'finds this machine’s podman through a real transport',
    async () => {
      const transport = createLocalTransport();
      const host = await probeContainerHost(transport);
      await transport.close();
      expect(host.engine).toBe('podman');
      expect(host.program).toMatch(/^\/.*podman$/);
      expect(host.version).toMatch(/^podman version \d+\.\d+/);
      // This machine has no NVIDIA CDI spec; the probe must not invent one.
      expect(host.gpu).toBe(existsSync('/etc/cdi/nvidia.yaml') ? 'cdi' : 'none');
    },
  );
});

describe('container systemd units', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'apertus-container-unit-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('runs the container in the foreground with systemd restarting it, and escapes % and $', () => {
    const unit = renderContainerUnit(spec, podmanCdi);
    const lines = unit.split('\n');
    const exec = lines.find((l) => l.startsWith('ExecStart='));
    expect(exec).toMatch(/^ExecStart=\/usr\/bin\/podman run --rm --name apertus-llm --ipc host /);
    expect(exec).not.toContain('--restart');
    expect(exec).toContain('"it\'s 100%% $$HOME"');
    expect(lines).toContain('ExecStartPre=-/usr/bin/podman rm --force apertus-llm');
    expect(lines).toContain('ExecStop=/usr/bin/podman stop --time 10 apertus-llm');
    // 'always' in engine terms is systemd's Restart=always.
    expect(lines).toContain('Restart=always');
    expect(unit).not.toMatch(/\{\{/);
  });

  it.skipIf(!existsSync('/usr/bin/systemd-analyze') || !existsSync('/usr/bin/podman'))(
    'passes systemd-analyze verify',
    async () => {
      for (const [name, s] of [
        ['apertus-llm.service', spec],
        [
          'apertus-plain.service',
          { ...spec, service: 'plain', gpus: undefined, restart: 'unless-stopped' as const },
        ],
      ] as const) {
        const file = path.join(dir, name);
        await writeFile(file, renderContainerUnit(s, { ...podmanCdi, program: '/usr/bin/podman' }));
        const result = await execa('systemd-analyze', ['verify', file], { reject: false });
        expect({ name, exitCode: result.exitCode, stderr: result.stderr }).toEqual({
          name,
          exitCode: 0,
          stderr: '',
        });
      }
    },
  );

  it.skipIf(!existsSync('/usr/bin/systemd-analyze'))(
    'a unit systemd would reject fails verify (the check bites)',
    async () => {
      const file = path.join(dir, 'apertus-broken.service');
      await writeFile(file, renderContainerUnit(spec, { ...podmanCdi, program: '/nonexistent/podman' }));
      const result = await execa('systemd-analyze', ['verify', file], { reject: false });
      expect(result.exitCode).not.toBe(0);
      expect(result.stderr).toContain('/nonexistent/podman');
    },
  );
});

describe('container health', () => {
  it('a service without HTTP (PostgreSQL, health: tcp) is up once its port accepts a connection', async () => {
    const loaded = await loadRecipe('bundles/apertus-8b-pgvector');
    const postgres = resolveServices(loaded.recipe, loaded.file, () => null).find(
      (s) => s.name === 'postgres',
    );
    if (postgres?.runtime !== 'container') throw new Error('no postgres service');
    expect(adapterOf(postgres).healthPath(postgres)).toBeNull();

    // A real PostgreSQL wire-protocol server (PGlite) on a kernel-chosen port.
    const server = await startPgliteServer();
    const transport = createLocalTransport();
    const here = { ...postgres, port: server.port };
    try {
      expect(await waitForHealth(transport, here, 5_000)).toMatchObject({ status: 'ok' });
    } finally {
      await server.stop();
    }
    // Stopped: nothing accepts, and the wait ends failed at its deadline.
    const down = await waitForHealth(transport, here, 600);
    expect(down).toMatchObject({ status: 'fail' });
    expect(down.detail).toMatch(/no healthy answer in 0.6 s \(.*ECONNREFUSED/);
  });
});
