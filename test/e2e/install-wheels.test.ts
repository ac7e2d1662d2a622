/**
 * The acceptance journey for a Python wheelhouse (issue 3): a recipe names a requirements
 * file (`pip:`), `apertus bundle` resolves it with pip against a local package index
 * serving wheels the test builds, locks every wheel by hash and stores them; `apertus
 * install` over SSH into an air-gapped test host (a network namespace) makes a venv from the
 * staged wheels with `--no-index`, and the venv's python imports the package on the host.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDemoHost, createDemoHost, type DemoHost } from '../../src/core/demo-host/demo-host.js';
import { shellQuote } from '../../src/core/host/shell-quote.js';
import { hostTargetArgs, sshE2eRequirement } from '../helpers/demo-host.js';
import {
  type BuiltWheel,
  buildWheel,
  type PackageIndex,
  pythonRequirement,
  startPackageIndex,
} from '../helpers/package-index.js';
import { runCli } from '../helpers/run-cli.js';

const needs = [sshE2eRequirement(), await pythonRequirement()];
const ready = needs.every((n) => n.ok);

describe.skipIf(!ready)(
  `a wheelhouse through bundle and install ${needs.map((n) => n.why).join(' ')}`,
  () => {
    let work: string;
    let index: PackageIndex;
    let host: DemoHost;
    const marker = `wheels-${Math.random().toString(36).slice(2)}`;
    const token = `tok-${Math.random().toString(36).slice(2)}`;

    beforeAll(async () => {
      work = await mkdtemp(path.join(os.tmpdir(), 'apertus-install-wheels-'));
      const dir = path.join(work, 'built');
      await mkdir(dir);
      const wheels: BuiltWheel[] = [
        await buildWheel(dir, {
          name: 'apertus-hello',
          version: '1.0.0',
          tag: 'py3-none-any',
          module: 'apertus_hello',
          source: `from apertus_dep import VALUE\nfrom apertus_native import PLATFORM\nMARKER = ${JSON.stringify(marker)} + "-" + PLATFORM + "-" + str(VALUE)\n`,
          requires: ['apertus-dep>=2', 'apertus-native'],
        }),
        await buildWheel(dir, {
          name: 'apertus-dep',
          version: '2.0.0',
          tag: 'py3-none-any',
          module: 'apertus_dep',
          source: 'VALUE = 2\n',
        }),
        await buildWheel(dir, {
          name: 'apertus-native',
          version: '1.0.0',
          tag: 'cp311-cp311-manylinux2014_x86_64',
          module: 'apertus_native',
          source: 'PLATFORM = "linux"\n',
        }),
        await buildWheel(dir, {
          name: 'apertus-native',
          version: '1.1.0',
          tag: 'cp311-cp311-macosx_11_0_arm64',
          module: 'apertus_native',
          source: 'PLATFORM = "mac"\n',
        }),
      ];
      index = await startPackageIndex(wheels, { user: 'ci', token });
      host = await createDemoHost({ workDir: path.join(work, 'host'), mode: 'netns' });
    });

    afterAll(async () => {
      await host?.teardown();
      await index?.stop();
      if (work) await rm(work, { recursive: true, force: true });
    });

    async function writeRecipe(name: string, python: string): Promise<string> {
      const recipe = path.join(work, name);
      await mkdir(recipe, { recursive: true });
      await writeFile(path.join(recipe, 'requirements.txt'), 'apertus-hello==1.0.0\n');
      await writeFile(
        path.join(recipe, 'apertus.yaml'),
        [
          'apiVersion: apertus.dev/v1',
          'kind: Bundle',
          'metadata:',
          `  name: ${name}`,
          '  version: 1.0.0',
          'components:',
          '  - name: rag-libs',
          '    kind: wheels',
          '    source: pip:requirements.txt',
          `    python: "${python}"`,
          '',
        ].join('\n'),
      );
      return recipe;
    }

    const installArgs = (bundlePath: string) => [
      'install',
      bundlePath,
      ...hostTargetArgs(host),
      '--allow-unsigned',
      '--json',
    ];

    it('bundles the locked wheels, installs them into a venv over SSH with no index, and imports them there', async () => {
      const recipe = await writeRecipe('wheels-demo', '3.11');
      const env = { CI: 'true', PIP_INDEX_URL: index.authUrl };
      const bundled = await runCli(
        ['bundle', recipe, '-o', path.join(work, 'out'), '--cache-dir', path.join(work, 'cache'), '--json'],
        { env },
      );
      expect(bundled.exitCode, bundled.stdout).toBe(0);
      expect(bundled.stdout + bundled.stderr).not.toContain(token);
      const result = JSON.parse(bundled.stdout);
      expect(result.plan.components[0]).toMatchObject({
        kind: 'wheels',
        revision: expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
        files: 4,
      });

      const installed = await runCli(installArgs(result.path));
      expect(installed.exitCode, installed.stdout).toBe(0);
      expect(JSON.parse(installed.stdout)).toMatchObject({ ok: true });

      const venv = path.join(host.root, 'releases', 'wheels-demo', '1.0.0', 'venvs', 'rag-libs');
      const transport = await connectDemoHost(host);
      try {
        const run = await transport.exec(
          shellQuote([
            path.join(venv, 'bin', 'python'),
            '-c',
            'import apertus_hello; print(apertus_hello.MARKER)',
          ]),
          { reject: false },
        );
        expect(run.stderr).toBe('');
        expect(run.stdout.trim()).toBe(`${marker}-linux-2`);
      } finally {
        await transport.close();
      }

      // Installing the same bundle again keeps the complete venv.
      // Without --json, so the step lines show on stderr.
      const again = await runCli(installArgs(result.path).filter((arg) => arg !== '--json'));
      expect(again.exitCode, again.stderr).toBe(0);
      expect(again.stderr).toMatch(/venvs\/rag-libs \(kept\)/);
    });

    it('refuses in preflight, before uploading, a host whose python3 is not the version the wheels were resolved for', async () => {
      const recipe = await writeRecipe('wheels-py312', '3.12');
      // apertus-native has cp311 wheels only; the pure wheels resolve for any Python 3.
      await writeFile(path.join(recipe, 'requirements.txt'), 'apertus-dep==2.0.0\n');
      const bundled = await runCli(
        ['bundle', recipe, '-o', path.join(work, 'out'), '--cache-dir', path.join(work, 'cache'), '--json'],
        { env: { CI: 'true', PIP_INDEX_URL: index.authUrl } },
      );
      expect(bundled.exitCode, bundled.stdout).toBe(0);
      const installed = await runCli(installArgs(JSON.parse(bundled.stdout).path));
      expect(installed.exitCode).toBe(1);
      const error = JSON.parse(installed.stdout).error;
      expect(error.code).toBe('host-python-mismatch');
      expect(error.hint).toContain('python: "3.11"');
    });
  },
);
