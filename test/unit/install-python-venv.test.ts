/**
 * The host side of wheels components through the local transport (the same sh scripts the
 * SSH transport runs; test/e2e/install-wheels.test.ts runs them over SSH): the Python check,
 * a venv filled from a staged wheelhouse with --no-index, and a staged wheel that changed.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApertusError } from '../../src/core/errors.js';
import { createLocalTransport } from '../../src/core/host/local-transport.js';
import type { BundleConfig } from '../../src/core/layout/types.js';
import { formatRequirementsLock } from '../../src/core/sources/pip/requirements-lock.js';
import { checkHostPython, createVenvs, wheelsVenvs } from '../../src/core/target/venvs.js';
import { type BuiltWheel, buildWheel, pythonRequirement } from '../helpers/package-index.js';

const python = await pythonRequirement();
const transport = createLocalTransport();

describe('wheelsVenvs', () => {
  it('plans one venv per wheels component under <release>/venvs, 3.11 when the bundle names none', () => {
    const entry = (name: string, kind: BundleConfig['components'][number]['kind'], py?: string) => ({
      name,
      kind,
      manifest: { mediaType: 'x', digest: `sha256:${'0'.repeat(64)}`, size: 1 },
      provenance: { source: 'pip:r.txt', ...(py ? { python: py } : {}) },
    });
    const config = {
      components: [entry('model', 'model'), entry('rag', 'wheels', '3.12'), entry('old', 'wheels')],
    } as unknown as BundleConfig;
    expect(wheelsVenvs(config, '/r/releases/x/1')).toEqual([
      {
        component: 'rag',
        python: '3.12',
        componentDir: '/r/releases/x/1/rag',
        venvDir: '/r/releases/x/1/venvs/rag',
      },
      {
        component: 'old',
        python: '3.11',
        componentDir: '/r/releases/x/1/old',
        venvDir: '/r/releases/x/1/venvs/old',
      },
    ]);
  });
});

describe.skipIf(!python.ok)(`venvs from a staged wheelhouse ${python.why}`, () => {
  let work: string;
  let wheels: BuiltWheel[];
  let localVersion: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-venv-'));
    await mkdir(path.join(work, 'built'));
    wheels = [
      await buildWheel(path.join(work, 'built'), {
        name: 'apertus-hello',
        version: '1.0.0',
        tag: 'py3-none-any',
        module: 'apertus_hello',
        source: 'from apertus_dep import VALUE\nMARKER = "venv-" + str(VALUE)\n',
        requires: ['apertus-dep'],
      }),
      await buildWheel(path.join(work, 'built'), {
        name: 'apertus-dep',
        version: '2.0.0',
        tag: 'py3-none-any',
        module: 'apertus_dep',
        source: 'VALUE = 2\n',
      }),
    ];
    const { stdout } = await execa('python3', ['-c', 'import sys; print("%d.%d" % sys.version_info[:2])']);
    localVersion = stdout.trim();
  });

  afterAll(async () => {
    await transport.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function stage(release: string, tamper = false): Promise<void> {
    const component = path.join(release, 'rag');
    await mkdir(path.join(component, 'wheels'), { recursive: true });
    for (const wheel of wheels) {
      const bytes =
        tamper && wheel.spec.name === 'apertus-dep'
          ? Buffer.concat([wheel.bytes, Buffer.from('x')])
          : wheel.bytes;
      await writeFile(path.join(component, 'wheels', wheel.fileName), bytes);
    }
    const lock = formatRequirementsLock(
      wheels.map((w) => ({
        distribution: w.fileName.split('-')[0] as string,
        version: w.spec.version,
        digest: `sha256:${w.sha256}`,
      })),
      { python: localVersion, platforms: ['any'], index: 'http://127.0.0.1/simple/' },
    );
    await writeFile(path.join(component, 'requirements.lock'), lock);
  }

  const venvOf = (release: string) => ({
    component: 'rag',
    python: localVersion,
    componentDir: path.join(release, 'rag'),
    venvDir: path.join(release, 'venvs', 'rag'),
  });

  it('finds the matching python3, fills the venv from the staged wheels only, and keeps it the second time', async () => {
    const release = path.join(work, 'release-ok');
    await stage(release);
    const venv = venvOf(release);
    const pythons = await checkHostPython(transport, [venv]);
    expect([...pythons.keys()]).toEqual([localVersion]);

    const made = await createVenvs(transport, [venv], pythons);
    expect(made).toEqual([{ component: 'rag', venvDir: venv.venvDir, created: true }]);
    const run = await execa(path.join(venv.venvDir, 'bin', 'python'), [
      '-c',
      'import apertus_hello; print(apertus_hello.MARKER)',
    ]);
    expect(run.stdout.trim()).toBe('venv-2');

    const again = await createVenvs(transport, [venv], pythons);
    expect(again[0]?.created).toBe(false);
  });

  it('refuses a host without the Python version the wheels were resolved for', async () => {
    const error = await checkHostPython(transport, [{ ...venvOf(work), python: '3.4' }]).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ApertusError);
    expect((error as ApertusError).code).toBe('host-python-mismatch');
    expect((error as ApertusError).message).toContain(`python3 is ${localVersion}`);
    expect((error as ApertusError).hint).toContain(`python: "${localVersion}"`);
  });

  it('refuses a staged wheel whose bytes differ from the lock, and leaves no complete venv', async () => {
    const release = path.join(work, 'release-bad');
    await stage(release, true);
    const venv = venvOf(release);
    const pythons = await checkHostPython(transport, [venv]);
    const error = await createVenvs(transport, [venv], pythons).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApertusError);
    expect((error as ApertusError).code).toBe('install-venv-failed');
    expect((error as ApertusError).message).toMatch(/DO NOT MATCH THE HASHES/);
    // No completion marker: the next install makes this venv again instead of keeping it.
    expect(existsSync(path.join(venv.venvDir, 'bin', 'python'))).toBe(true);
    expect(existsSync(path.join(venv.venvDir, '.apertus-venv-complete'))).toBe(false);
  });
});
