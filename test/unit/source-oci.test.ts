import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApertusError } from '../../src/core/errors.js';
import { imageArchiveFiles, imageArchiveScript } from '../../src/core/sources/oci/image-archive.js';
import {
  parseOciReference,
  pinnedReference,
  registryBaseUrl,
  repoTag,
} from '../../src/core/sources/oci/parse-oci-reference.js';
import { findRegistryCredentials } from '../../src/core/sources/oci/registry-credentials.js';
import { parsePlatform, pickPlatform } from '../../src/core/sources/oci/resolve-oci.js';
import { parseWwwAuthenticate } from '../../src/core/sources/oci/www-authenticate.js';

const HEX = 'a'.repeat(64);
const DIGEST = `sha256:${HEX}`;

function errorOf(action: () => unknown): ApertusError {
  try {
    action();
  } catch (error) {
    if (error instanceof ApertusError) return error;
    throw error;
  }
  throw new Error('expected an ApertusError');
}

describe('parseOciReference', () => {
  it('defaults to docker.io, library/ and latest the way docker does', () => {
    expect(parseOciReference('oci:ubuntu')).toEqual({
      registry: 'docker.io',
      host: 'registry-1.docker.io',
      scheme: 'https',
      repository: 'library/ubuntu',
      tag: 'latest',
    });
    expect(parseOciReference('oci:vllm/vllm-openai:v0.11.0')).toMatchObject({
      registry: 'docker.io',
      host: 'registry-1.docker.io',
      repository: 'vllm/vllm-openai',
      tag: 'v0.11.0',
    });
    expect(parseOciReference('oci:docker.io/ubuntu:22.04')).toMatchObject({
      repository: 'library/ubuntu',
      tag: '22.04',
    });
    expect(parseOciReference('oci:index.docker.io/qdrant/qdrant:v1.15.0').registry).toBe('docker.io');
  });

  it('reads registries with ports, localhost and IPv6, and digests', () => {
    expect(parseOciReference('oci:127.0.0.1:5000/test/hello:1', { insecure: true })).toEqual({
      registry: '127.0.0.1:5000',
      host: '127.0.0.1:5000',
      scheme: 'http',
      repository: 'test/hello',
      tag: '1',
    });
    expect(parseOciReference('oci:localhost/app').registry).toBe('localhost');
    expect(parseOciReference('oci:[::1]:5000/app:x').registry).toBe('[::1]:5000');
    expect(parseOciReference(`oci:ghcr.io/org/app@${DIGEST}`)).toEqual({
      registry: 'ghcr.io',
      host: 'ghcr.io',
      scheme: 'https',
      repository: 'org/app',
      digest: DIGEST,
    });
    // Tag and digest: the digest decides what is fetched, the tag names the image on hosts.
    expect(parseOciReference(`oci:Quay.IO/org/app:1.0@${DIGEST}`)).toMatchObject({
      registry: 'quay.io',
      tag: '1.0',
      digest: DIGEST,
    });
  });

  it('parses the pinned form it produces', () => {
    const reference = parseOciReference('oci:vllm/vllm-openai:v0.11.0');
    const pinned = pinnedReference(reference, DIGEST);
    expect(pinned).toBe(`docker.io/vllm/vllm-openai@${DIGEST}`);
    expect(parseOciReference(pinned)).toMatchObject({ repository: 'vllm/vllm-openai', digest: DIGEST });
    expect(registryBaseUrl(reference)).toBe('https://registry-1.docker.io');
    expect(repoTag(reference, DIGEST)).toBe('docker.io/vllm/vllm-openai:v0.11.0');
    expect(repoTag(parseOciReference(pinned), DIGEST)).toBe(`docker.io/vllm/vllm-openai:sha256-${HEX}`);
  });

  it('never echoes a password written into the source', () => {
    const error = errorOf(() => parseOciReference('oci:alice:s3cret-pw@registry.example/app:1'));
    expect(error.code).toBe('oci-reference-invalid');
    expect(error.message).not.toContain('s3cret-pw');
  });

  it('refuses what is not a reference, saying how to write one', () => {
    const cases: Array<[string, RegExp]> = [
      ['hf:org/model', /does not start with|not valid/],
      ['oci:', /missing/],
      ['oci:docker.io/Vllm/vllm-openai', /not a valid name component/],
      ['oci:vllm/vllm-openai:.bad', /not a valid tag/],
      [`oci:vllm/vllm-openai:${'x'.repeat(129)}`, /not a valid tag/],
      ['oci:vllm/vllm-openai@sha256:abc', /not a sha256 digest/],
      [`oci:vllm/vllm-openai@sha512:${'a'.repeat(128)}`, /not a sha256 digest/],
      ['oci:host:99999/app', /invalid port/],
      ['oci:a//b', /empty component/],
    ];
    for (const [source, message] of cases) {
      const error = errorOf(() => parseOciReference(source));
      expect(error.code, source).toBe('oci-reference-invalid');
      expect(error.kind).toBe('user');
      expect(error.message, source).toMatch(message);
      expect(error.hint).toBeTruthy();
    }
  });
});

describe('parseWwwAuthenticate', () => {
  it('reads a registry bearer challenge', () => {
    expect(
      parseWwwAuthenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:vllm/vllm-openai:pull"',
      ),
    ).toEqual([
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.docker.io/token',
          service: 'registry.docker.io',
          scope: 'repository:vllm/vllm-openai:pull',
        },
      },
    ]);
  });

  it('reads several challenges, token values, escapes and token68', () => {
    expect(
      parseWwwAuthenticate(
        'Basic realm="Registry \\"A\\", with comma", Bearer realm=https://x/t , error="insufficient_scope",Negotiate abc==',
      ),
    ).toEqual([
      { scheme: 'basic', params: { realm: 'Registry "A", with comma' } },
      { scheme: 'bearer', params: { realm: 'https://x/t', error: 'insufficient_scope' } },
      { scheme: 'negotiate', params: {}, token68: 'abc==' },
    ]);
    expect(parseWwwAuthenticate('BASIC REALM="r"')).toEqual([{ scheme: 'basic', params: { realm: 'r' } }]);
  });

  it('survives malformed headers', () => {
    expect(parseWwwAuthenticate('')).toEqual([]);
    expect(parseWwwAuthenticate('realm="x"')).toEqual([]);
    expect(parseWwwAuthenticate('Bearer realm="unterminated')).toEqual([
      { scheme: 'bearer', params: { realm: 'unterminated' } },
    ]);
    expect(parseWwwAuthenticate('"x", Basic')).toEqual([{ scheme: 'basic', params: {} }]);
  });
});

describe('findRegistryCredentials', () => {
  let dir: string;
  const reference = { registry: 'registry.example:5000', repository: 'team/app' };
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'apertus-oci-creds-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('takes the environment pair, scoped by APERTUS_REGISTRY_HOST when set', async () => {
    const env = { APERTUS_REGISTRY_USERNAME: 'u', APERTUS_REGISTRY_PASSWORD: 'p' };
    expect(await findRegistryCredentials(reference, env)).toEqual({ username: 'u', password: 'p' });
    expect(
      await findRegistryCredentials(reference, { ...env, APERTUS_REGISTRY_HOST: 'registry.example:5000' }),
    ).toEqual({ username: 'u', password: 'p' });
    expect(
      await findRegistryCredentials(reference, { ...env, APERTUS_REGISTRY_HOST: 'docker.io' }),
    ).toBeUndefined();
    expect(
      await findRegistryCredentials(
        { registry: 'docker.io', repository: 'library/x' },
        { ...env, APERTUS_REGISTRY_HOST: 'https://index.docker.io/v1/' },
      ),
    ).toEqual({ username: 'u', password: 'p' });
    const error = await findRegistryCredentials(reference, { APERTUS_REGISTRY_USERNAME: 'u' }).catch(
      (e) => e,
    );
    expect(error).toMatchObject({ code: 'oci-credentials-incomplete' });
  });

  it('reads podman and docker login files, most specific entry first', async () => {
    const authFile = join(dir, 'auth.json');
    const auth = (value: string) => ({ auth: Buffer.from(value).toString('base64') });
    await writeFile(
      authFile,
      JSON.stringify({
        auths: {
          'registry.example:5000': auth('whole:registry'),
          'registry.example:5000/team': auth('team:pass:with:colons'),
          'https://index.docker.io/v1/': auth('hub:token'),
        },
      }),
    );
    expect(await findRegistryCredentials(reference, { REGISTRY_AUTH_FILE: authFile })).toEqual({
      username: 'team',
      password: 'pass:with:colons',
    });
    expect(
      await findRegistryCredentials(
        { registry: 'registry.example:5000', repository: 'other/app' },
        { REGISTRY_AUTH_FILE: authFile },
      ),
    ).toEqual({ username: 'whole', password: 'registry' });
    await writeFile(
      join(dir, 'config.json'),
      await import('node:fs/promises').then((fs) => fs.readFile(authFile)),
    );
    expect(
      await findRegistryCredentials(
        { registry: 'docker.io', repository: 'library/ubuntu' },
        { DOCKER_CONFIG: dir },
      ),
    ).toEqual({ username: 'hub', password: 'token' });
    expect(
      await findRegistryCredentials({ registry: 'ghcr.io', repository: 'a/b' }, { DOCKER_CONFIG: dir }),
    ).toBeUndefined();
  });

  it('refuses a broken login file without quoting it', async () => {
    const broken = join(dir, 'broken.json');
    await writeFile(broken, '{"auths": {"x": {"auth": "c2VjcmV0LXBhc3N3b3Jk"}');
    const error = await findRegistryCredentials(reference, { REGISTRY_AUTH_FILE: broken }).catch((e) => e);
    expect(error).toMatchObject({ code: 'oci-auth-file-invalid' });
    expect(String(error.message)).not.toContain('c2VjcmV0');
  });
});

describe('pickPlatform', () => {
  const entry = (platform: { os: string; architecture: string; variant?: string }, extra = {}) => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: `sha256:${createDigest(JSON.stringify(platform) + JSON.stringify(extra))}`,
    size: 1,
    platform,
    ...extra,
  });
  const amd64 = entry({ os: 'linux', architecture: 'amd64' });
  const arm64 = entry({ os: 'linux', architecture: 'arm64', variant: 'v8' });
  const armv7 = entry({ os: 'linux', architecture: 'arm', variant: 'v7' });
  const attestation = entry(
    { os: 'unknown', architecture: 'unknown' },
    { annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
  );

  it('picks the platform and never an attestation', () => {
    const manifests = [attestation, arm64, amd64, armv7];
    expect(pickPlatform(manifests, parsePlatform('linux/amd64'))).toBe(amd64);
    expect(pickPlatform(manifests, parsePlatform('linux/arm64'))).toBe(arm64);
    expect(pickPlatform(manifests, parsePlatform('linux/arm64/v8'))).toBe(arm64);
    expect(pickPlatform(manifests, parsePlatform('linux/arm/v7'))).toBe(armv7);
    expect(pickPlatform(manifests, parsePlatform('linux/arm/v6'))).toBeUndefined();
    expect(pickPlatform([attestation], parsePlatform('linux/amd64'))).toBeUndefined();
  });

  it('refuses malformed platforms', () => {
    expect(errorOf(() => parsePlatform('amd64')).code).toBe('oci-platform-invalid');
    expect(errorOf(() => parsePlatform('linux/amd64/v1/x')).code).toBe('oci-platform-invalid');
  });
});

function createDigest(text: string): string {
  let hex = '';
  for (const char of text) hex += char.charCodeAt(0).toString(16);
  return hex.padEnd(64, '0').slice(0, 64);
}

describe('image archive', () => {
  const spec = {
    manifest: {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: `sha256:${'1'.repeat(64)}`,
      size: 345,
    },
    config: { digest: `sha256:${'2'.repeat(64)}` },
    layers: [
      { digest: `sha256:${'3'.repeat(64)}` },
      { digest: `sha256:${'4'.repeat(64)}` },
      { digest: `sha256:${'3'.repeat(64)}` },
    ],
    repoTags: ['docker.io/vllm/vllm-openai:v0.11.0', 'registry.local:5000/vllm/vllm-openai:v0.11.0'],
  };

  it('writes an OCI layout index and a docker manifest.json pointing at blobs/sha256', () => {
    const files = imageArchiveFiles(spec);
    expect(JSON.parse(files['oci-layout'])).toEqual({ imageLayoutVersion: '1.0.0' });
    expect(JSON.parse(files['index.json'])).toEqual({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          ...spec.manifest,
          annotations: {
            'io.containerd.image.name': 'docker.io/vllm/vllm-openai:v0.11.0',
            'org.opencontainers.image.ref.name': 'docker.io/vllm/vllm-openai:v0.11.0',
          },
        },
      ],
    });
    expect(JSON.parse(files['manifest.json'])).toEqual([
      {
        Config: `blobs/sha256/${'2'.repeat(64)}`,
        RepoTags: spec.repoTags,
        Layers: [
          `blobs/sha256/${'3'.repeat(64)}`,
          `blobs/sha256/${'4'.repeat(64)}`,
          `blobs/sha256/${'3'.repeat(64)}`,
        ],
      },
    ]);
  });

  it('links each blob once, loads by directory with podman and tags by image id', () => {
    const script = imageArchiveScript(spec, {
      blobDir: '/var/lib/apertus/blobs/sha256',
      archiveDir: `/var/lib/apertus/images/sha256-${'1'.repeat(64)}`,
      load: 'auto',
    });
    expect(script).toContain(
      `for hex in ${'1'.repeat(64)} ${'2'.repeat(64)} ${'3'.repeat(64)} ${'4'.repeat(64)}; do`,
    );
    expect(script).toContain('(cd "$parent" && podman load -i "$name")');
    expect(script).toContain(`podman tag ${'2'.repeat(64)} docker.io/vllm/vllm-openai:v0.11.0`);
    expect(script).toContain('| docker load');
    expect(script).toMatch(/^set -eu\n/);
    expect(imageArchiveScript(spec, { blobDir: '/b', archiveDir: '/x/sha256-1', load: 'none' })).not.toMatch(
      /podman|docker load/,
    );
  });

  it('refuses names that would break loading or quoting', () => {
    const code = (action: () => unknown) => errorOf(action).code;
    expect(code(() => imageArchiveFiles({ ...spec, repoTags: [] }))).toBe('image-archive-invalid');
    expect(code(() => imageArchiveFiles({ ...spec, repoTags: ["x/y:1'; rm -rf /"] }))).toBe(
      'image-archive-invalid',
    );
    expect(code(() => imageArchiveFiles({ ...spec, config: { digest: 'sha256:zz' } }))).toBe(
      'image-archive-invalid',
    );
    expect(
      code(() => imageArchiveScript(spec, { blobDir: '/b', archiveDir: '/x/Image+1', load: 'podman' })),
    ).toBe('image-archive-invalid');
    expect(code(() => imageArchiveScript(spec, { blobDir: 'b', archiveDir: '/x/img', load: 'podman' }))).toBe(
      'image-archive-invalid',
    );
  });
});
