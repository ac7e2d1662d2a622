/**
 * Installs stopped with real signals (SIGINT, SIGTERM, SIGKILL) at the upload, right after
 * the switch and while the new services start, and a disk that fills up, on a real
 * air-gapped host (sshd in a network namespace). Whatever the moment, the next command
 * finds the host consistent: the previous release serving or named in state.json, a dead
 * command's lock taken over, every change recorded.
 */
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDemoHost, createDemoHost, type DemoHost } from '../../src/core/demo-host/demo-host.js';
import { httpRequest } from '../../src/core/host/http-over-transport.js';
import { shellQuote } from '../../src/core/host/shell-quote.js';
import type { HostStatus } from '../../src/core/operations/status.js';
import { hostLayout } from '../../src/core/target/layout.js';
import { stopCurrentRelease } from '../../src/core/target/releases.js';
import { apertusBin as apertus, parseJson as json, startApertusBin } from '../helpers/apertus-bin.js';
import { sshE2eRequirement } from '../helpers/demo-host.js';
import { tamperBundle } from '../helpers/tamper-bundle.js';

const requirement = sshE2eRequirement();

/** Polls until `probe` is true (every 10 ms), so a signal lands at the moment it describes. */
async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const started = Date.now();
  while (!(await probe().catch(() => false))) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

describe.skipIf(!requirement.ok)(`installs stopped mid-way ${requirement.why}`, () => {
  let work: string;
  let host: DemoHost;
  let key: string;
  let v010: string;
  let v020: string;

  const at = (root: string) => [
    '--host',
    host.address as string,
    '-i',
    host.identityFile as string,
    '--known-hosts',
    host.knownHostsFile as string,
    '--root',
    root,
  ];
  const install = (bundle: string, root: string) => [
    'install',
    bundle,
    ...at(root),
    '--trust-key',
    key,
    '--json',
  ];

  async function onHost<T>(run: (exec: (command: string) => Promise<string>) => Promise<T>): Promise<T> {
    const transport = await connectDemoHost(host);
    try {
      return await run(async (command) => (await transport.exec(command, { reject: false })).stdout);
    } finally {
      await transport.close();
    }
  }

  async function health(ports: number[]): Promise<number[]> {
    const transport = await connectDemoHost(host);
    try {
      const statuses: number[] = [];
      for (const port of ports)
        statuses.push(
          await httpRequest(transport, { port, path: '/health', timeoutMs: 10_000 }).then(
            (r) => r.status,
            () => 0,
          ),
        );
      return statuses;
    } finally {
      await transport.close();
    }
  }

  async function stopServing(root: string): Promise<void> {
    const transport = await connectDemoHost(host);
    try {
      await stopCurrentRelease(transport, hostLayout(root));
    } finally {
      await transport.close();
    }
  }

  const state = async (root: string) => JSON.parse(await readFile(path.join(root, 'state.json'), 'utf8'));
  const lastRecord = async (root: string) =>
    JSON.parse(
      (await readFile(path.join(root, 'audit.log'), 'utf8')).trimEnd().split('\n').at(-1) as string,
    ) as {
      seq: number;
      method: string;
      endpoint: string;
      status: number;
      documents: string[];
    };
  const uploading = (root: string) => async () =>
    (await readdir(path.join(root, 'blobs', 'sha256'))).some((f) => f.startsWith('.incoming-'));
  const switchedTo = (root: string, version: string) => async () =>
    (await readlink(path.join(root, 'current'))) === `releases/demo/${version}`;
  const startingServices = (root: string, version: string) => async () =>
    (await switchedTo(root, version)()) && (await exists(path.join(root, 'run', 'llm.pid')));

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-interrupted-'));
    host = await createDemoHost({ workDir: path.join(work, 'host'), mode: 'netns' });
    const made = await apertus(['keys', 'generate', '-o', path.join(work, 'release'), '--json']);
    const pair = json<{ secretKeyPath: string; publicKeyPath: string }>(made.stdout);
    key = pair.publicKeyPath;
    const bundled = await apertus([
      'bundle',
      'bundles/demo',
      '-o',
      path.join(work, 'out'),
      '--no-cli',
      '--sign',
      pair.secretKeyPath,
      '--json',
    ]);
    expect(bundled.exitCode, bundled.stderr).toBe(0);
    v010 = json<{ path: string }>(bundled.stdout).path;
    v020 = await tamperBundle(
      v010,
      path.join(work, 'v020'),
      (c) => {
        c.version = '0.2.0';
      },
      pair.secretKeyPath,
    );
  });

  afterAll(async () => {
    await host?.teardown();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it.each(['SIGINT', 'SIGTERM'] as const)(
    '%s during the upload: exit 130, lock released, nothing switched; the next install finishes',
    async (signal) => {
      const root = path.join(work, `upload-${signal}`);
      const run = startApertusBin(install(v010, root));
      await until('the upload', uploading(root));
      run.process.kill(signal);
      const stopped = await run.done;
      expect(stopped.exitCode, stopped.stderr).toBe(130);
      expect(json<{ error: { code: string } }>(stopped.stdout).error.code).toBe('interrupted');
      expect(await exists(path.join(root, '.install.lock'))).toBe(false);
      expect(await exists(path.join(root, 'current'))).toBe(false);
      expect((await state(root)).current).toBeNull();

      const again = await apertus(install(v010, root));
      expect(again.exitCode, again.stdout).toBe(0);
      expect((await readdir(path.join(root, 'blobs', 'sha256'))).filter((f) => f.startsWith('.'))).toEqual(
        [],
      );
      await stopServing(root);
    },
  );

  it('SIGKILL during the upload: the lock is stale, and the next install takes it over and finishes', async () => {
    const root = path.join(work, 'upload-SIGKILL');
    const run = startApertusBin(install(v010, root));
    await until('the upload', uploading(root));
    run.process.kill('SIGKILL');
    expect((await run.done).signal).toBe('SIGKILL');
    expect(await exists(path.join(root, '.install.lock', 'holder.json'))).toBe(true);
    await until(
      'the keeper of the dead command to exit',
      async () => {
        const status = json<HostStatus>((await apertus(['status', ...at(root), '--json'])).stdout);
        return status.lock.stale === true;
      },
      30_000,
    );
    const again = await apertus(install(v010, root));
    expect(again.exitCode, again.stdout).toBe(0);
    expect(json(again.stdout)).toMatchObject({ tookOverLock: { command: 'install demo 0.1.0' } });
    expect(await exists(path.join(root, '.install.lock'))).toBe(false);
    await stopServing(root);
  });

  describe('on a host serving 0.1.0', () => {
    let root: string;

    beforeAll(async () => {
      root = path.join(work, 'serving');
      const first = await apertus(install(v010, root));
      expect(first.exitCode, first.stdout).toBe(0);
    });

    afterAll(async () => {
      await stopServing(root);
    });

    async function putBack(signal: 'SIGINT' | 'SIGTERM', moment: () => Promise<boolean>) {
      const run = startApertusBin(install(v020, root));
      await until('the moment', moment);
      run.process.kill(signal);
      const stopped = await run.done;
      expect(stopped.exitCode, stopped.stderr).toBe(130);
      const error = json<{
        error: { code: string; message: string; details: { report: { interrupted: boolean } } };
      }>(stopped.stdout).error;
      expect(error.code).toBe('interrupted');
      expect(error.message).toContain('Rolled back to releases/demo/0.1.0');
      expect(error.details.report.interrupted).toBe(true);
      expect(await readlink(path.join(root, 'current'))).toBe('releases/demo/0.1.0');
      expect(await health([18080, 18090])).toEqual([200, 200]);
      expect(await exists(path.join(root, '.install.lock'))).toBe(false);
      expect(await state(root)).toMatchObject({
        current: { version: '0.1.0', verified: true },
        pending: null,
      });
      expect(await lastRecord(root)).toMatchObject({ method: 'INSTALL', endpoint: 'demo@0.2.0', status: 1 });
    }

    it('SIGTERM right after the switch puts 0.1.0 back, serving, records it, and releases the lock', async () => {
      await putBack('SIGTERM', switchedTo(root, '0.2.0'));
    });

    it('SIGINT while the new services start does the same', async () => {
      await putBack('SIGINT', startingServices(root, '0.2.0'));
    });

    it('SIGKILL right after the switch: status names the unverified release; rollback takes over the lock and returns to 0.1.0', async () => {
      const run = startApertusBin(install(v020, root));
      await until('the switch', switchedTo(root, '0.2.0'));
      run.process.kill('SIGKILL');
      expect((await run.done).signal).toBe('SIGKILL');
      expect(await state(root)).toMatchObject({
        current: { version: '0.2.0', verified: false },
        previous: 'releases/demo/0.1.0',
        pending: { release: 'releases/demo/0.2.0', previous: 'releases/demo/0.1.0' },
      });
      let status: HostStatus | undefined;
      await until(
        'the lock to go stale',
        async () => {
          const result = await apertus(['status', ...at(root), '--json']);
          status = json<HostStatus>(result.stdout);
          return result.exitCode === 1 && status.lock.stale === true;
        },
        30_000,
      );
      expect(status).toMatchObject({ ok: false, current: { version: '0.2.0', verified: false } });
      expect(status?.warnings.join('\n')).toContain('was never verified');

      const back = await apertus(['rollback', ...at(root), '--json']);
      expect(back.exitCode, back.stdout).toBe(0);
      expect(json(back.stdout)).toMatchObject({
        ok: true,
        to: { version: '0.1.0' },
        tookOverLock: { command: 'install demo 0.2.0' },
      });
      expect(await health([18080, 18090])).toEqual([200, 200]);
      const after = json<HostStatus>((await apertus(['status', ...at(root), '--json'])).stdout);
      expect(after).toMatchObject({
        ok: true,
        current: { version: '0.1.0', verified: true },
        interrupted: null,
        warnings: [],
      });
    });

    it('SIGKILL while the new services start: the next install takes over and goes live, 0.1.0 its previous release', async () => {
      const run = startApertusBin(install(v020, root));
      await until('the services to start', startingServices(root, '0.2.0'));
      run.process.kill('SIGKILL');
      expect((await run.done).signal).toBe('SIGKILL');
      await until(
        'the lock to go stale',
        async () => {
          const status = json<HostStatus>((await apertus(['status', ...at(root), '--json'])).stdout);
          return status.lock.stale === true;
        },
        30_000,
      );
      const again = await apertus(install(v020, root));
      expect(again.exitCode, again.stdout).toBe(0);
      expect(json(again.stdout)).toMatchObject({ ok: true, tookOverLock: { command: 'install demo 0.2.0' } });
      expect(await state(root)).toMatchObject({
        current: { version: '0.2.0', verified: true },
        previous: 'releases/demo/0.1.0',
        pending: null,
      });
      const verified = await apertus(['audit', 'verify', '--installs', ...at(root), '--json']);
      expect(json(verified.stdout)).toMatchObject({ ok: true, problems: [] });
    });
  });

  describe('on a full disk', () => {
    let mount: string;
    let root: string;
    /** Fills the tmpfs but `leaveBytes`, through the host's own view of its mounts. */
    const fill = (leaveBytes: number) =>
      onHost(async (exec) => {
        await exec(`rm -f ${shellQuote([path.join(mount, 'filler')])}`);
        const free =
          Number((await exec(`df -Pk ${shellQuote([mount])} | awk 'NR==2 {print $4}'`)).trim()) * 1024;
        const blocks = Math.max(0, Math.floor((free - leaveBytes) / 4096));
        await exec(
          `dd if=/dev/zero of=${shellQuote([path.join(mount, 'filler')])} bs=4096 count=${blocks} 2>/dev/null; sync`,
        );
      });

    beforeAll(async () => {
      mount = path.join(work, 'tiny');
      root = path.join(mount, 'root');
      await mkdir(mount);
      // Mounted in the sessions' own mount namespace: the host sees what the operator sees.
      await onHost((exec) => exec(`mount -t tmpfs -o size=400m,mode=755 tmpfs ${shellQuote([mount])}`));
      const first = await apertus(install(v010, root));
      expect(first.exitCode, first.stdout).toBe(0);
    });

    afterAll(async () => {
      await stopServing(root).catch(() => undefined);
      await onHost((exec) => exec(`umount -l ${shellQuote([mount])}`));
    });

    it('refuses rollback and install saying which filesystem is full, leaving no lock behind', async () => {
      await fill(0);
      for (const args of [['rollback', ...at(root), '--json'], install(v020, root)]) {
        const refused = await apertus(args);
        expect(refused.exitCode, refused.stdout).toBe(1);
        expect(json<{ error: { code: string; message: string } }>(refused.stdout).error).toMatchObject({
          code: 'host-disk-full',
          message: expect.stringMatching(
            new RegExp(`^No space left on ${mount} \\(tmpfs\\) .*\\(needs 1\\.0 MB, has `),
          ),
        });
        expect(await onHost((exec) => exec(`ls -A ${shellQuote([root])}`))).not.toContain('.install.lock');
      }
      // Room for the lock, not for the release: the check says what it needs and has.
      await fill(3_000_000);
      const refused = await apertus(install(v020, root));
      expect(json<{ error: { code: string; message: string } }>(refused.stdout).error).toMatchObject({
        code: 'host-check-failed',
        message: expect.stringMatching(
          new RegExp(`No space left on ${mount} for ${root}: needs \\S+ \\S+, has `),
        ),
      });
      const current = await onHost((exec) => exec(`readlink ${shellQuote([path.join(root, 'current')])}`));
      expect(current.trim()).toBe('releases/demo/0.1.0');
    });

    it('a disk that fills right after the switch: rolled back, recorded, the lock released, and it says so', async () => {
      await fill(200_000_000);
      const run = startApertusBin(install(v020, root));
      const transport = await connectDemoHost(host);
      try {
        const link = shellQuote([path.join(root, 'current')]);
        await until(
          'the switch',
          async () =>
            (await transport.exec(`readlink ${link}`, { reject: false })).stdout.trim() ===
            'releases/demo/0.2.0',
        );
      } finally {
        await transport.close();
      }
      await fill(0);
      const failed = await run.done;
      await fill(50_000_000);
      expect(failed.exitCode, failed.stderr).toBe(1);
      const error = json<{
        error: { code: string; message: string; details: { report: { rollback: { to: string } } } };
      }>(failed.stdout).error;
      expect(error.code).toBe('install-verification-failed');
      expect(error.message).toMatch(/No space left on/);
      expect(error.details.report.rollback.to).toBe('releases/demo/0.1.0');
      const onDisk = await onHost(async (exec) => ({
        current: (await exec(`readlink ${shellQuote([path.join(root, 'current')])}`)).trim(),
        lock: (await exec(`ls -A ${shellQuote([root])}`)).includes('.install.lock'),
        state: JSON.parse(await exec(`cat ${shellQuote([path.join(root, 'state.json')])}`)),
        last: JSON.parse((await exec(`tail -n 1 ${shellQuote([path.join(root, 'audit.log')])}`)).trim()),
      }));
      expect(onDisk).toMatchObject({
        current: 'releases/demo/0.1.0',
        lock: false,
        state: { current: { version: '0.1.0' }, pending: null },
        last: { method: 'INSTALL', endpoint: 'demo@0.2.0', status: 1 },
      });
    });
  });
});
