/**
 * The pip: source against a local PEP 503 index serving real wheels built by the test:
 * platform selection, dependency resolution, the hash lock, hash pins, cache reuse, and
 * credentials that never reach a written file.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundle } from '../../src/core/bundle/bundle.js';
import { ApertusError } from '../../src/core/errors.js';
import { openBundle } from '../../src/core/layout/bundle-reader.js';
import { loadBundle } from '../../src/core/layout/load-bundle.js';
import type { ProgressEvent } from '../../src/core/progress.js';
import { fetchPip } from '../../src/core/sources/pip/fetch-pip.js';
import { indexUrlSecrets, redactIndexUrl, scrubSecrets } from '../../src/core/sources/pip/index-url.js';
import { pipDownload } from '../../src/core/sources/pip/pip-download.js';
import {
  requirementsIndexOptions,
  requirementsPinHashes,
} from '../../src/core/sources/pip/requirements-lock.js';
import { resolvePip } from '../../src/core/sources/pip/resolve-pip.js';
import { parseWheelFileName } from '../../src/core/sources/pip/wheel-filename.js';
import { recipeSchema } from '../../src/core/spec/recipe-schema.js';
import {
  type BuiltWheel,
  buildWheel,
  type PackageIndex,
  pythonRequirement,
  startPackageIndex,
} from '../helpers/package-index.js';

const python = await pythonRequirement();

describe('wheel file names (PEP 427)', () => {
  it('reads distribution, version, build tag and compressed tag sets', () => {
    expect(parseWheelFileName('apertus_hello-1.0.0-py3-none-any.whl')).toMatchObject({
      distribution: 'apertus_hello',
      version: '1.0.0',
      build: null,
      pythonTags: ['py3'],
      abiTags: ['none'],
      platformTags: ['any'],
    });
    expect(
      parseWheelFileName('torch-2.8.0+cu128-1-cp311-cp311-manylinux_2_28_x86_64.manylinux2014_x86_64.whl'),
    ).toMatchObject({
      distribution: 'torch',
      version: '2.8.0+cu128',
      build: '1',
      platformTags: ['manylinux_2_28_x86_64', 'manylinux2014_x86_64'],
    });
    expect(parseWheelFileName('six-1.16.0-py2.py3-none-any.whl')?.pythonTags).toEqual(['py2', 'py3']);
  });

  it('refuses names that are not wheels', () => {
    expect(parseWheelFileName('apertus-1.0.0.tar.gz')).toBeUndefined();
    expect(parseWheelFileName('a-1.0-py3-none.whl')).toBeUndefined();
    expect(parseWheelFileName('a-1.0-x-py3-none-any.whl')).toBeUndefined();
    expect(parseWheelFileName('../a-1.0-py3-none-any.whl')).toBeUndefined();
  });
});

describe('index URLs and requirements files', () => {
  it('strips credentials from index URLs and scrubs them from text', () => {
    const url = 'https://alice:s3cr%40t@pypi.example.org/simple/';
    expect(redactIndexUrl(url)).toBe('https://pypi.example.org/simple/');
    const secrets = indexUrlSecrets(url);
    expect(secrets).toEqual(expect.arrayContaining(['alice', 's3cr%40t', 's3cr@t']));
    expect(scrubSecrets('GET https://alice:s3cr@t@host', secrets)).not.toMatch(/alice|s3cr/);
    expect(indexUrlSecrets('https://pypi.org/simple/')).toEqual([]);
  });

  it('sees hash pins and index options, not in comments', () => {
    expect(requirementsPinHashes('a==1 \\\n    --hash=sha256:abc\n')).toBe(true);
    expect(requirementsPinHashes('a==1  # --hash=sha256:abc\n')).toBe(false);
    expect(requirementsIndexOptions('-i https://x/simple\na\n--extra-index-url=https://y\n')).toEqual([
      '-i',
      '--extra-index-url',
    ]);
    expect(requirementsIndexOptions('# --index-url https://x\na\n')).toEqual([]);
  });

  it('the recipe takes kind wheels with a pip: source only, and no credentials in indexUrl', () => {
    const recipe = (component: Record<string, unknown>) =>
      recipeSchema.safeParse({
        apiVersion: 'apertus.dev/v1',
        kind: 'Bundle',
        metadata: { name: 'w', version: '1.0.0' },
        components: [{ name: 'rag', ...component }],
      });
    expect(recipe({ kind: 'wheels', source: 'pip:requirements.txt', python: '3.12' }).success).toBe(true);
    expect(recipe({ kind: 'files', source: 'pip:requirements.txt' }).success).toBe(false);
    expect(recipe({ kind: 'wheels', source: 'file:wheels' }).success).toBe(false);
    expect(recipe({ kind: 'files', source: 'file:x', python: '3.11' }).success).toBe(false);
    const withToken = recipe({
      kind: 'wheels',
      source: 'pip:requirements.txt',
      indexUrl: 'https://user:tok@pypi.example.org/simple/',
    });
    expect(withToken.success).toBe(false);
    expect(JSON.stringify(withToken.error?.issues)).toContain('PIP_INDEX_URL');
  });
});

describe.skipIf(!python.ok)(`the pip: source against a local index ${python.why}`, () => {
  let work: string;
  let wheels: BuiltWheel[];
  let index: PackageIndex;
  let recipeDir: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-pip-'));
    const dir = path.join(work, 'built');
    await mkdir(dir);
    wheels = [
      await buildWheel(dir, {
        name: 'apertus-hello',
        version: '1.0.0',
        tag: 'py3-none-any',
        module: 'apertus_hello',
        source: 'from apertus_dep import VALUE\nMARKER = "hello"\n',
        requires: ['apertus-dep>=2'],
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
      // Newer, but for another platform: must not be picked for a manylinux x86_64 target.
      await buildWheel(dir, {
        name: 'apertus-native',
        version: '1.1.0',
        tag: 'cp311-cp311-macosx_11_0_arm64',
        module: 'apertus_native',
        source: 'PLATFORM = "mac"\n',
      }),
    ];
    index = await startPackageIndex(wheels);
    recipeDir = path.join(work, 'recipe');
    await mkdir(recipeDir);
    await writeFile(path.join(recipeDir, 'requirements.txt'), 'apertus-hello\napertus-native\n');
  });

  afterAll(async () => {
    await index?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const wheel = (fileName: string) => {
    const found = wheels.find((w) => w.fileName === fileName);
    if (!found) throw new Error(`no wheel ${fileName}`);
    return found;
  };

  it('resolves dependencies for the target platform, locks every wheel by hash, and reuses the cache', async () => {
    const cacheDir = path.join(work, 'cache-resolve');
    const events: ProgressEvent[] = [];
    index.resetCounters();
    const resolved = await resolvePip(
      'pip:requirements.txt',
      { recipeDir, indexUrl: index.url },
      { cacheDir, env: {}, onProgress: (e) => events.push(e) },
    );
    const expected = [
      'apertus_dep-2.0.0-py3-none-any.whl',
      'apertus_hello-1.0.0-py3-none-any.whl',
      'apertus_native-1.0.0-cp311-cp311-manylinux2014_x86_64.whl',
    ];
    expect(resolved.wheels.map((w) => w.fileName)).toEqual(expected);
    expect(resolved.downloaded.sort()).toEqual(expected);
    expect(index.wheelBytesServed()).toBe(expected.reduce((sum, f) => sum + wheel(f).bytes.length, 0));
    expect(index.requests).not.toContain('/files/apertus_native-1.1.0-cp311-cp311-macosx_11_0_arm64.whl');
    expect(resolved).toMatchObject({ python: '3.11', index: index.url });
    expect(resolved.platforms).toContain('manylinux2014_x86_64');
    expect(resolved.files.map((f) => f.path)).toEqual([
      'requirements.lock',
      ...expected.map((f) => `wheels/${f}`),
    ]);
    expect(events.map((e) => `${e.step}:${e.status}`)).toEqual(['pip:start', 'pip:ok']);

    const lock = await readFile(resolved.lock.localPath, 'utf8');
    const pins = lock.split('\n').filter((line) => line.length > 0 && !line.startsWith('#'));
    expect(pins).toEqual([
      `apertus_dep==2.0.0 --hash=sha256:${wheel(expected[0] as string).sha256}`,
      `apertus_hello==1.0.0 --hash=sha256:${wheel(expected[1] as string).sha256}`,
      `apertus_native==1.0.0 --hash=sha256:${wheel(expected[2] as string).sha256}`,
    ]);
    expect(resolved.revision).toBe(resolved.lock.digest);

    const fetched = await fetchPip(resolved, {});
    expect(fetched.map((f) => f.path)).toEqual(resolved.files.map((f) => f.path));
    for (const file of fetched.slice(1)) {
      expect(await readFile(file.localPath)).toEqual(wheel(path.basename(file.path)).bytes);
    }

    // A second bundle of the same recipe: pip reads the index pages, but every wheel comes from the cache.
    index.resetCounters();
    const again = await resolvePip(
      'pip:requirements.txt',
      { recipeDir, indexUrl: index.url },
      { cacheDir, env: {} },
    );
    expect(index.wheelBytesServed()).toBe(0);
    expect(again.downloaded).toEqual([]);
    expect(again.revision).toBe(resolved.revision);
    expect(again.wheels.map((w) => w.fileName)).toEqual(expected);
  });

  it('takes the index from PIP_INDEX_URL in the environment it is given', async () => {
    const resolved = await resolvePip(
      'pip:requirements.txt',
      { recipeDir, platforms: ['manylinux2014_x86_64'] },
      { cacheDir: path.join(work, 'cache-env'), env: { PIP_INDEX_URL: index.url } },
    );
    expect(resolved.index).toBe(index.url);
    expect(resolved.platforms).toEqual(['manylinux2014_x86_64']);
    expect(resolved.wheels).toHaveLength(3);
  });

  it('finds no wheel when the target platform has none', async () => {
    const error = await resolvePip(
      'pip:requirements.txt',
      { recipeDir, indexUrl: index.url, platforms: ['musllinux_1_2_aarch64'] },
      { cacheDir: path.join(work, 'cache-musl'), env: {} },
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApertusError);
    expect((error as ApertusError).code).toBe('pip-no-matching-wheel');
    expect((error as ApertusError).message).toContain('apertus-native');
  });

  it('refuses a wheel whose served bytes do not match its --hash pin', async () => {
    const dep = wheel('apertus_dep-2.0.0-py3-none-any.whl');
    const pinned = path.join(work, 'pinned');
    await mkdir(pinned, { recursive: true });
    await writeFile(
      path.join(pinned, 'requirements.txt'),
      `apertus-dep==2.0.0 \\\n    --hash=sha256:${dep.sha256}\n`,
    );
    // The honest index passes, with --require-hashes on.
    const ok = await resolvePip(
      'pip:requirements.txt',
      { recipeDir: pinned, indexUrl: index.url },
      { cacheDir: path.join(work, 'cache-pinned-ok'), env: {} },
    );
    expect(ok.wheels.map((w) => w.digest)).toEqual([`sha256:${dep.sha256}`]);

    const tampered = await startPackageIndex(wheels);
    try {
      tampered.tamper(dep.fileName, Buffer.concat([dep.bytes, Buffer.from('tampered')]));
      const error = await resolvePip(
        'pip:requirements.txt',
        { recipeDir: pinned, indexUrl: tampered.url },
        { cacheDir: path.join(work, 'cache-pinned-bad'), env: {} },
      ).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ApertusError);
      expect((error as ApertusError).code).toBe('pip-hash-mismatch');
      expect((error as ApertusError).message).toContain(dep.sha256);
    } finally {
      await tampered.stop();
    }
  });

  it('refuses requirements files that name their own index', async () => {
    const dir = path.join(work, 'own-index');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'requirements.txt'), `--index-url ${index.url}\napertus-hello\n`);
    const error = await resolvePip(
      'pip:requirements.txt',
      { recipeDir: dir, indexUrl: index.url },
      { cacheDir: path.join(work, 'cache-own'), env: {} },
    ).catch((e: unknown) => e);
    expect((error as ApertusError).code).toBe('pip-requirements-index-option');
  });

  it('says so when python3 is missing', async () => {
    const error = await pipDownload({
      python: '3.11',
      platforms: ['manylinux2014_x86_64'],
      indexUrl: index.url,
      secrets: [],
      requirementsFile: path.join(recipeDir, 'requirements.txt'),
      requireHashes: false,
      destDir: work,
      interpreter: path.join(work, 'no-such-python3'),
    }).catch((e: unknown) => e);
    expect((error as ApertusError).code).toBe('pip-python-missing');
    expect((error as ApertusError).hint).toContain('python3-pip');
  });

  it('never writes the index credentials: not to the bundle, the cache, the lock, progress or errors', async () => {
    const token = `tok-${Math.random().toString(36).slice(2)}-secret`;
    const secured = await startPackageIndex(wheels, { user: 'ci-bot', token });
    try {
      const dir = path.join(work, 'secured');
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, 'requirements.txt'), 'apertus-hello\napertus-native\n');
      await writeFile(
        path.join(dir, 'apertus.yaml'),
        [
          'apiVersion: apertus.dev/v1',
          'kind: Bundle',
          'metadata:',
          '  name: wheels-only',
          '  version: 1.0.0',
          'components:',
          '  - name: rag-libs',
          '    kind: wheels',
          '    source: pip:requirements.txt',
          '',
        ].join('\n'),
      );
      const events: ProgressEvent[] = [];
      const out = path.join(work, 'secured-out');
      const cacheDir = path.join(work, 'secured-cache');
      const result = await bundle({
        recipePath: dir,
        outDir: out,
        cacheDir,
        env: { PIP_INDEX_URL: secured.authUrl },
        onProgress: (e) => events.push(e),
      });
      if (result.dryRun) throw new Error('not a dry run');

      const reader = await openBundle(result.path);
      try {
        const loaded = await loadBundle(reader);
        const entry = loaded.config.components.find((c) => c.name === 'rag-libs');
        expect(entry).toMatchObject({
          kind: 'wheels',
          provenance: { source: 'pip:requirements.txt', index: secured.url, python: '3.11' },
        });
        const layers = loaded.components.find((c) => c.name === 'rag-libs')?.layers ?? [];
        expect(layers.map((l) => l.annotations?.['org.opencontainers.image.title'])).toEqual([
          'requirements.lock',
          'wheels/apertus_dep-2.0.0-py3-none-any.whl',
          'wheels/apertus_hello-1.0.0-py3-none-any.whl',
          'wheels/apertus_native-1.0.0-cp311-cp311-manylinux2014_x86_64.whl',
        ]);
      } finally {
        await reader.close();
      }

      const files = [...(await listFiles(out)), ...(await listFiles(cacheDir))];
      expect(files.length).toBeGreaterThanOrEqual(5); // the tar, the lock, three wheels
      for (const file of files) {
        const bytes = await readFile(file);
        expect(bytes.includes(token), file).toBe(false);
        expect(bytes.includes('ci-bot'), file).toBe(false);
      }
      expect(JSON.stringify(events)).not.toContain(token);
      expect(JSON.stringify(result)).not.toContain(token);

      // A wrong token fails, and the error does not repeat it either.
      const wrong = `${token}-wrong`;
      const error = await resolvePip(
        'pip:requirements.txt',
        { recipeDir: dir },
        {
          cacheDir: path.join(work, 'secured-cache-2'),
          env: { PIP_INDEX_URL: secured.authUrl.replace(token, wrong) },
        },
      ).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ApertusError);
      const text = JSON.stringify({ ...(error as ApertusError), message: (error as ApertusError).message });
      expect(text).not.toContain(wrong);
    } finally {
      await secured.stop();
    }
  });
});

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(full)));
    else if (entry.isFile()) out.push(full);
  }
  return out;
}
