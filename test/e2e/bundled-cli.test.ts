/**
 * Journey 3 of DESIGN.md: inside the air gap, `tar -xf BUNDLE.tar apertus/` gives the
 * operator a working installer. The extracted CLI, on the Node binary it carries, verifies
 * the bundle and installs it over SSH into a host with no route out.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoHost, type DemoHost } from '../../src/core/demo-host/demo-host.js';
import { hostTargetArgs, sshE2eRequirement } from '../helpers/demo-host.js';

const BIN = path.resolve('bin/apertus.js');
const requirement = sshE2eRequirement();

describe('the CLI a bundle carries under apertus/', () => {
  let work: string;
  let bundlePath: string;
  let publicKey: string;
  let extracted: string;

  /** Runs the extracted launcher from its own directory, with a bare environment. */
  const bundled = (args: string[]) =>
    execa(path.join(extracted, 'apertus', 'bin', 'apertus'), args, {
      cwd: extracted,
      env: { PATH: '/usr/bin:/bin', CI: 'true' },
      extendEnv: false,
      reject: false,
    });

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-bundled-cli-'));
    const keys = await execa(process.execPath, [
      BIN,
      'keys',
      'generate',
      '-o',
      path.join(work, 'release'),
      '--json',
    ]);
    publicKey = JSON.parse(keys.stdout).publicKeyPath;
    const made = await execa(process.execPath, [
      BIN,
      'bundle',
      'bundles/demo',
      '-o',
      path.join(work, 'out'),
      '--sign',
      path.join(work, 'release.key'),
      '--json',
    ]);
    const result = JSON.parse(made.stdout);
    bundlePath = result.path;
    expect(result.cli).toMatchObject({ version: expect.any(String), node: process.version });
    extracted = path.join(work, 'gap');
    await mkdir(extracted);
    // Only apertus/: the operator takes the installer out of the bundle, nothing else.
    await execa('tar', ['-xf', bundlePath, '-C', extracted, 'apertus/']);
  });

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('runs on the Node binary it carries and verifies the bundle it came in', async () => {
    const version = await bundled(['--version']);
    expect(version.exitCode, version.stderr).toBe(0);
    const node = await execa(path.join(extracted, 'apertus', 'node', 'bin', 'node'), ['--version']);
    expect(node.stdout).toBe(process.version);

    const verified = await bundled(['verify', bundlePath, '--key', publicKey, '--json']);
    expect(verified.exitCode, verified.stderr).toBe(0);
    const results = JSON.parse(verified.stdout) as {
      ok: boolean;
      signed: boolean;
      results: Array<{ subject: string; status: string }>;
    };
    expect(results).toMatchObject({ ok: true, signed: true });
    // The CLI's own files are covered by SHA256SUMS and the signature like every blob.
    expect(results.results.filter((r) => r.subject.startsWith('apertus/')).length).toBeGreaterThan(100);

    const inspected = await bundled(['inspect', bundlePath, '--json']);
    expect(JSON.parse(inspected.stdout).cli).toMatchObject({ version: expect.any(String) });
  });

  it.skipIf(!requirement.ok)(
    `installs the bundle onto an air-gapped host, every check ok ${requirement.why}`,
    async () => {
      const host: DemoHost = await createDemoHost({ workDir: path.join(work, 'host'), mode: 'netns' });
      try {
        const installed = await bundled([
          'install',
          bundlePath,
          ...hostTargetArgs(host),
          '--trust-key',
          publicKey,
          '--count-egress',
          'sink0',
          '--json',
        ]);
        expect(installed.exitCode, installed.stderr || installed.stdout).toBe(0);
        const report = JSON.parse(installed.stdout) as { ok: boolean; checks: Array<{ status: string }> };
        expect(report.ok).toBe(true);
        expect(report.checks.length).toBeGreaterThanOrEqual(10);
        expect(report.checks.filter((c) => c.status !== 'ok')).toEqual([]);
        // Teardown stops what runs inside the host's namespace, the installed services too.
      } finally {
        await host.teardown();
      }
    },
  );
});
