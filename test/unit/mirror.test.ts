/**
 * `apertus mirror`: where each component goes (repository and tag under the prefix), the
 * `--to` values refused at the flag, and an attack: a registry whose upload session points
 * at another origin gets the bytes there, but the credentials never leave the registry.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { mirrorTarget, parseMirrorTarget } from '../../src/core/operations/mirror.js';
import { parseOciReference } from '../../src/core/sources/oci/parse-oci-reference.js';
import { createRegistryClient } from '../../src/core/sources/oci/registry-client.js';

const bundle = { name: 'apertus-8b-rag', version: '1.2.0' };
const REVISION = '0123456789abcdef0123456789abcdef01234567';

describe('mirrorTarget', () => {
  it('keeps an image under its source repository and tag', () => {
    const image = {
      name: 'vllm',
      kind: 'image',
      provenance: { source: 'oci:docker.io/vllm/vllm-openai:v0.11.0' },
    };
    expect(mirrorTarget(bundle, image, 'apertus')).toEqual({
      repository: 'apertus/vllm/vllm-openai',
      tag: 'v0.11.0',
    });
  });

  it('puts a Hub model under its lowercased repo id, tagged with its commit', () => {
    const model = {
      name: 'model',
      kind: 'model',
      provenance: { source: `hf://swiss-ai/Apertus-8B-Instruct-2509@${REVISION}`, revision: REVISION },
    };
    expect(mirrorTarget(bundle, model, '')).toEqual({
      repository: 'swiss-ai/apertus-8b-instruct-2509',
      tag: REVISION,
    });
  });

  it('puts local components and the bundle manifest under the bundle name and version', () => {
    const files = { name: 'RAG_Templates', kind: 'files', provenance: { source: 'file:templates' } };
    expect(mirrorTarget(bundle, files, 'x/y')).toEqual({
      repository: 'x/y/apertus-8b-rag/rag_templates',
      tag: '1.2.0',
    });
    expect(mirrorTarget(bundle, undefined, 'x')).toEqual({ repository: 'x/apertus-8b-rag', tag: '1.2.0' });
  });
});

describe('parseMirrorTarget', () => {
  it('splits the registry from the prefix', () => {
    expect(parseMirrorTarget('registry.internal:5000/apertus/models/', false)).toEqual({
      registry: 'registry.internal:5000',
      prefix: 'apertus/models',
    });
    expect(parseMirrorTarget('127.0.0.1:5000', true)).toEqual({ registry: '127.0.0.1:5000', prefix: '' });
  });

  it.each([
    ['user:hunter2@registry.internal/x', /holds credentials/],
    ['apertus/models', /does not start with a registry host/],
    ['registry.internal/Models', /not a valid name component/],
    ['registry.internal/a/../b', /not a registry and path/],
  ])('refuses %s', (to, message) => {
    let thrown: unknown;
    try {
      parseMirrorTarget(to, false);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({ code: 'mirror-target-invalid', message });
    expect(String((thrown as Error).message)).not.toContain('hunter2');
  });
});

describe('pushing to a registry that sends the upload elsewhere', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
  });
  const listen = async (
    handler: (req: IncomingMessage, body: Buffer) => [number, Record<string, string>],
  ) => {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const [status, headers] = handler(req, Buffer.concat(chunks));
        res.writeHead(status, headers).end();
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  };

  it('sends the bytes to the other origin without the Authorization header', async () => {
    const elsewhere: Array<{ method?: string; authorization?: string; bytes: number }> = [];
    const storage = await listen((req, body) => {
      elsewhere.push({ method: req.method, authorization: req.headers.authorization, bytes: body.length });
      return [
        201,
        { 'docker-content-digest': new URL(req.url ?? '/', 'http://x').searchParams.get('digest') ?? '' },
      ];
    });
    const registry = await listen((req) => {
      if (req.headers.authorization === undefined) return [401, { 'www-authenticate': 'Basic realm="r"' }];
      if (req.method === 'POST') return [202, { location: `http://127.0.0.1:${storage}/upload/1?state=s` }];
      return [200, {}];
    });
    const reference = parseOciReference(`oci:127.0.0.1:${registry}/apertus/model:1`, { insecure: true });
    const client = await createRegistryClient({
      reference,
      env: {},
      credentials: { username: 'u', password: 'hunter2-password' },
      push: true,
    });
    const bytes = Buffer.from('model weights');
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    await client.pushBlob({ digest, size: bytes.length }, async function* () {
      yield bytes;
    });
    expect(elsewhere).toEqual([{ method: 'PUT', authorization: undefined, bytes: bytes.length }]);
  });
});
