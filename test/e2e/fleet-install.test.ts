/**
 * `apertus install --inventory` end to end: four hosts, each a real sshd in its own network
 * namespace with no route out. On host "bad" another process holds the service's port (its
 * service cannot start, so its verification fails); host "gone" has no sshd on its port. The canary goes first,
 * "bad" is rolled back, the failures go over --max-fail 0 and the last batch never starts.
 * With the fault removed and --max-fail 25%, all four end ok. One bundle (the generated tiny
 * model on the CPU runtime) serves every run.
 */
import { mkdir, mkdtemp, readdir, readlink, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoHost, type DemoHost } from '../../src/core/demo-host/demo-host.js';
import { parseHostAddress } from '../../src/core/host/host-address.js';
import type { FleetInstallReport } from '../../src/core/operations/fleet-install.js';
import { generateTinyModel } from '../../src/core/tiny-model/generate.js';
import { sshE2eRequirement, startHttpServerOnHost } from '../helpers/demo-host.js';

const BIN = path.resolve('bin/apertus.js');
const requirement = sshE2eRequirement();
if (!requirement.ok) console.warn(`Skipping test/e2e/fleet-install.test.ts: ${requirement.why}.`);

async function apertus(args: string[]) {
  const result = await execa(process.execPath, [BIN, ...args], { reject: false, env: { CI: 'true' } });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** In inventory order: the batches (forks 2) are [canary], [bad, gone], [late]. */
const NAMES = ['canary', 'bad', 'gone', 'late'] as const;

describe.skipIf(!requirement.ok)(
  `install --inventory across four air-gapped hosts ${requirement.why}`,
  () => {
    let work: string;
    const hosts = new Map<string, DemoHost>();
    let bundlePath: string;
    let publicKey: string;
    let stopFault: () => void = () => {};

    /** The inventory, "gone" on a port where nothing listens unless `goneReachable`. */
    async function writeInventory(goneReachable: boolean): Promise<string> {
      const lines = [
        'apiVersion: apertus.dev/v1',
        'kind: Inventory',
        'groups:',
        '  gpus: [canary, bad, gone, late]',
        'hosts:',
      ];
      for (const name of NAMES) {
        const host = hosts.get(name) as DemoHost;
        const address = parseHostAddress(host.address as string);
        const port = name === 'gone' && !goneReachable ? 1 : address.port;
        lines.push(
          `  - name: ${name}`,
          `    address: ${address.host}`,
          `    user: ${address.user}`,
          `    port: ${port}`,
          `    identity: ${host.identityFile}`,
          `    knownHosts: ${host.knownHostsFile}`,
          `    root: ${host.root}`,
        );
      }
      const file = path.join(work, `hosts-${goneReachable ? 'all' : 'one-gone'}.yaml`);
      await writeFile(file, `${lines.join('\n')}\n`);
      return file;
    }

    beforeAll(async () => {
      work = await mkdtemp(path.join(os.tmpdir(), 'apertus-fleet-e2e-'));
      const made = await Promise.all(
        NAMES.map((name) => createDemoHost({ workDir: path.join(work, name), mode: 'netns' })),
      );
      for (const [i, name] of NAMES.entries()) hosts.set(name, made[i] as DemoHost);
      const recipe = path.join(work, 'recipe');
      await mkdir(path.join(recipe, 'model'), { recursive: true });
      await writeFile(path.join(recipe, 'model', 'tiny-llama.gguf'), generateTinyModel());
      await writeFile(
        path.join(recipe, 'apertus.yaml'),
        [
          'apiVersion: apertus.dev/v1',
          'kind: Bundle',
          'metadata: { name: fleet, version: 0.1.0 }',
          'components:',
          '  - { name: model, kind: model, source: "file:model" }',
          'services:',
          '  - { name: llm, runtime: llamacpp, model: model/tiny-llama.gguf, modelId: tiny, port: 18080, threads: 1, contextSize: 256 }',
          'verify:',
          '  chat: { prompt: Say hello., maxTokens: 4 }',
        ].join('\n'),
      );
      const keys = await apertus(['keys', 'generate', '-o', path.join(work, 'release'), '--json']);
      expect(keys.exitCode, keys.stderr).toBe(0);
      publicKey = (JSON.parse(keys.stdout) as { publicKeyPath: string }).publicKeyPath;
      const bundled = await apertus([
        'bundle',
        recipe,
        '-o',
        path.join(work, 'out'),
        '--sign',
        path.join(work, 'release.key'),
        '--json',
      ]);
      expect(bundled.exitCode, bundled.stderr).toBe(0);
      bundlePath = (JSON.parse(bundled.stdout) as { path: string }).path;
    });

    afterAll(async () => {
      stopFault();
      await Promise.all([...hosts.values()].map((host) => host.teardown()));
      if (work) await rm(work, { recursive: true, force: true });
    });

    const install = (inventory: string, ...flags: string[]) =>
      apertus([
        'install',
        bundlePath,
        '--inventory',
        inventory,
        '--trust-key',
        publicKey,
        '--count-egress',
        'sink0',
        '--forks',
        '2',
        '--json',
        ...flags,
      ]);

    it('canary first; the failing host rolled back; --max-fail 0 stops the last batch; exit 1', async () => {
      const started = Date.now();
      // The fault: on "bad" another process holds the service's port. The preflight check
      // would refuse that; with --skip-check ports the service cannot start, which fails
      // the install's verification there and rolls it back, as on a real host.
      const squatter = await startHttpServerOnHost(hosts.get('bad') as DemoHost, 18080);
      stopFault = () => squatter.stop();
      const run = await install(await writeInventory(false), '--skip-check', 'ports');
      console.log(`fleet run 1: ${Date.now() - started} ms\n${run.stdout}`);
      expect(run.exitCode, run.stderr).toBe(1);
      const report = JSON.parse(run.stdout) as FleetInstallReport;
      expect(report.batches).toEqual([
        { batch: 1, hosts: ['canary'], status: 'ok' },
        { batch: 2, hosts: ['bad', 'gone'], status: 'failed' },
        { batch: 3, hosts: ['late'], status: 'not-started' },
      ]);
      const by = new Map(report.hosts.map((h) => [h.host, h]));
      expect(by.get('canary')).toMatchObject({ status: 'ok', batch: 1, error: null });
      expect(by.get('bad')).toMatchObject({
        status: 'failed',
        batch: 2,
        error: { code: 'install-verification-failed' },
        rollback: { to: null, healthy: true },
      });
      expect(by.get('bad')?.error?.message).toContain('host-port-in-use');
      expect(by.get('gone')).toMatchObject({
        status: 'failed',
        batch: 2,
        error: { code: 'host-connection-refused' },
      });
      expect(by.get('gone')?.address).toMatch(/:1$/);
      expect(by.get('late')).toMatchObject({ status: 'not-started', batch: null, report: null });
      expect(report.summary).toEqual({
        hosts: 4,
        ok: 1,
        failed: 2,
        notStarted: 1,
        rolledBack: 1,
        stoppedBy: 'max-fail',
      });
      // On the hosts themselves: the canary runs the release, "bad" runs nothing, "late" was never touched.
      const root = (name: string) => (hosts.get(name) as DemoHost).root;
      expect(await readlink(path.join(root('canary'), 'current'))).toBe('releases/fleet/0.1.0');
      await expect(readlink(path.join(root('bad'), 'current'))).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await readdir(root('late'))).toEqual([]);
    }, 480_000);

    it('with the fault removed and --max-fail 25%, all four hosts end ok; status --inventory agrees', async () => {
      stopFault();
      const started = Date.now();
      const run = await install(await writeInventory(true), '--max-fail', '25%');
      console.log(`fleet run 2: ${Date.now() - started} ms\n${run.stdout}`);
      expect(run.exitCode, run.stdout).toBe(0);
      const report = JSON.parse(run.stdout) as FleetInstallReport;
      expect(report.maxFailPercent).toBe(25);
      expect(report.hosts.map((h) => [h.host, h.status])).toEqual(NAMES.map((name) => [name, 'ok']));
      expect(report.summary).toEqual({
        hosts: 4,
        ok: 4,
        failed: 0,
        notStarted: 0,
        rolledBack: 0,
        stoppedBy: null,
      });
      // The canary already had every blob: the bundle's bytes went only where they were missing.
      const canary = report.hosts[0]?.report as { transfer: { bytesUploaded: number } };
      expect(canary.transfer.bytesUploaded).toBe(0);

      const status = await apertus([
        'status',
        '--inventory',
        await writeInventory(true),
        '--limit',
        'gpus',
        '--json',
      ]);
      expect(status.exitCode, status.stdout).toBe(0);
      const statuses = JSON.parse(status.stdout) as {
        hosts: Array<{ host: string; ok: boolean; result: { current: { version: string } | null } }>;
      };
      expect(statuses.hosts.map((h) => [h.host, h.ok, h.result.current?.version])).toEqual(
        NAMES.map((name) => [name, true, '0.1.0']),
      );
    }, 480_000);
  },
);
