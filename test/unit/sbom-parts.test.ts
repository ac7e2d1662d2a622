/**
 * The pieces the SBOM is made of: licences as SPDX (checked against the SPDX list the
 * CycloneDX schema ships), package URLs as PURL-TYPES.rst writes them, wheel file names
 * (PEP 427) and the name-based serial number.
 */
import { execSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SPDX } from '@cyclonedx/cyclonedx-library';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uuidV5 } from '../../src/core/sbom/cyclonedx.js';
import { shippedNpmPackages } from '../../src/core/sbom/npm-packages.js';
import { huggingFacePurl, npmPurl, ociPurl, pypiPurl } from '../../src/core/sbom/purl.js';
import { cycloneDxLicenses, SPDX_IDS } from '../../src/core/sbom/spdx-license.js';
import { parseWheelFileName } from '../../src/core/sbom/wheel-file-name.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'apertus-sbom-parts-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe('licences', () => {
  it('knows only ids that are on the SPDX list', () => {
    expect(SPDX_IDS.length).toBeGreaterThan(20);
    expect(SPDX_IDS.filter((id) => !SPDX.isSupportedSpdxId(id))).toEqual([]);
  });

  it('writes ids in SPDX case, expressions as expressions, anything else as a name', () => {
    expect(cycloneDxLicenses('apache-2.0')).toEqual([{ license: { id: 'Apache-2.0' } }]);
    expect(cycloneDxLicenses('MIT')).toEqual([{ license: { id: 'MIT' } }]);
    expect(cycloneDxLicenses('(BSD-2-Clause OR MIT OR Apache-2.0)')).toEqual([
      { expression: '(BSD-2-Clause OR MIT OR Apache-2.0)' },
    ]);
    expect(cycloneDxLicenses('llama3')).toEqual([{ license: { name: 'llama3' } }]);
    expect(cycloneDxLicenses('MIT OR Frobnicate-1.0')).toEqual([
      { license: { name: 'MIT OR Frobnicate-1.0' } },
    ]);
    expect(cycloneDxLicenses(undefined)).toEqual([]);
    expect(cycloneDxLicenses('  ')).toEqual([]);
  });
});

describe('package URLs', () => {
  it('encodes npm scopes, normalises Python names, pins OCI digests and Hub commits', () => {
    expect(npmPurl('@node-llama-cpp/linux-x64', '3.21.1')).toBe('pkg:npm/%40node-llama-cpp/linux-x64@3.21.1');
    expect(npmPurl('node-llama-cpp', '3.21.1')).toBe('pkg:npm/node-llama-cpp@3.21.1');
    expect(pypiPurl('Typing_Extensions', '4.12.2')).toBe('pkg:pypi/typing-extensions@4.12.2');
    const digest = `sha256:${'ab'.repeat(32)}`;
    expect(
      ociPurl({
        registry: 'docker.io',
        repository: 'vllm/vllm-openai',
        digest,
        tag: 'v0.11.0',
        platform: 'linux/amd64',
      }),
    ).toBe(
      `pkg:oci/vllm-openai@sha256%3A${'ab'.repeat(32)}?arch=amd64&repository_url=docker.io/vllm/vllm-openai&tag=v0.11.0`,
    );
    const commit = 'a'.repeat(40);
    expect(huggingFacePurl('swiss-ai/Apertus-8B', commit)).toBe(
      `pkg:huggingface/swiss-ai/Apertus-8B@${commit}`,
    );
    expect(huggingFacePurl('swiss-ai/Apertus-8B', commit, 'https://huggingface.co')).toBe(
      `pkg:huggingface/swiss-ai/Apertus-8B@${commit}`,
    );
    expect(huggingFacePurl('org/m', commit, 'http://127.0.0.1:8080')).toBe(
      `pkg:huggingface/org/m@${commit}?repository_url=http://127.0.0.1:8080`,
    );
  });
});

describe('wheel file names', () => {
  it('reads name and version, with and without a build tag, and refuses what is not a wheel', () => {
    expect(
      parseWheelFileName('numpy-2.1.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl'),
    ).toEqual({
      name: 'numpy',
      version: '2.1.3',
      tags: { python: 'cp312', abi: 'cp312', platform: 'manylinux_2_17_x86_64.manylinux2014_x86_64' },
    });
    expect(parseWheelFileName('wheels/typing_extensions-4.12.2-1-py3-none-any.whl')).toMatchObject({
      name: 'typing_extensions',
      version: '4.12.2',
      build: '1',
    });
    expect(parseWheelFileName('torch-2.5.1.tar.gz')).toBeUndefined();
    expect(parseWheelFileName('broken-1.0-py3.whl')).toBeUndefined();
    expect(parseWheelFileName('a-1.0-x-py3-none-any.whl')).toBeUndefined();
  });
});

describe('serial numbers', () => {
  it('are RFC 9562 version 5 UUIDs (the RFC example: python.org in the DNS namespace)', () => {
    expect(uuidV5('python.org', '6ba7b810-9dad-11d1-80b4-00c04fd430c8')).toBe(
      '886313e1-3b8a-5372-9b90-0c9aee199e5d',
    );
  });
});

describe('npm packages in a tar layer', () => {
  it('finds package roots, nested ones too, and skips package.json files that are not roots', async () => {
    const put = async (path: string, value: unknown): Promise<{ path: string; source: string }> => {
      const source = join(work, 'tree', path);
      await mkdir(join(source, '..'), { recursive: true });
      await writeFile(source, typeof value === 'string' ? value : JSON.stringify(value));
      return { path, source };
    };
    const entries = [
      await put('server.mjs', 'export {};'),
      await put('node_modules/a/package.json', { name: 'a', version: '1.0.0', license: 'MIT' }),
      await put('node_modules/a/dist/package.json', { type: 'module' }),
      await put('node_modules/a/node_modules/@s/b/package.json', {
        name: '@s/b',
        version: '2.0.0',
        licenses: [{ type: 'MIT' }, { type: 'Apache-2.0' }],
      }),
      await put('node_modules/c/package.json', { name: 'c', version: '0.1.0', license: { type: 'ISC' } }),
    ];
    // Each package's tree hash as the SBOM's method property tells anyone to recompute it.
    const treeHash = (pkg: string) =>
      execSync(
        "find . -type f ! -path './node_modules/*' | sed 's|^\\./||' | LC_ALL=C sort | xargs sha256sum | sha256sum",
        { cwd: join(work, 'tree', pkg), encoding: 'utf8' },
      ).split(' ')[0];
    expect(await shippedNpmPackages(entries)).toEqual([
      {
        name: 'a',
        version: '1.0.0',
        license: 'MIT',
        path: 'node_modules/a',
        sha256: treeHash('node_modules/a'),
      },
      {
        name: '@s/b',
        version: '2.0.0',
        license: '(MIT OR Apache-2.0)',
        path: 'node_modules/a/node_modules/@s/b',
        sha256: treeHash('node_modules/a/node_modules/@s/b'),
      },
      {
        name: 'c',
        version: '0.1.0',
        license: 'ISC',
        path: 'node_modules/c',
        sha256: treeHash('node_modules/c'),
      },
    ]);
  });
});
