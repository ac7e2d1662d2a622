/**
 * Real files on disk and a BundleWritePlan over them, for the bundle, layout and verify
 * tests: a model component (with a duplicated file and a path over 100 bytes), a
 * runtime component with an executable, and a tar layer with a path too long for ustar.
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { BundleWritePlan } from '../../src/core/bundle/write-bundle.js';

export const LONG_DIR = `tokenizer/${'a'.repeat(60)}/${'b'.repeat(60)}`;
export const VERY_LONG_PATH = `${'deep/'.repeat(40)}leaf.txt`;

/** Deterministic pseudo-random bytes, so fixtures hash the same on every run. */
export function fixtureBytes(seed: string, length: number): Buffer {
  const out = Buffer.alloc(length);
  let block = createHash('sha256').update(seed).digest();
  for (let offset = 0; offset < length; offset += block.length) {
    block.copy(out, offset);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

async function put(root: string, path: string, bytes: Buffer | string): Promise<string> {
  const full = join(root, path);
  await mkdir(dirname(full), { recursive: true });
  await writeFile(full, bytes);
  return full;
}

export async function makeBundleFixture(root: string): Promise<BundleWritePlan> {
  const weights = fixtureBytes('weights', 300 * 1024 + 17);
  const model = {
    config: await put(root, 'src/model/config.json', '{"architectures":["Test"]}\n'),
    weights: await put(root, 'src/model/weights.bin', weights),
    copy: await put(root, 'src/model/copy-of-weights.bin', weights),
    tokenizer: await put(root, `src/model/${LONG_DIR}/tokenizer.json`, '{"model":{}}\n'),
  };
  const runtime = {
    node: await put(root, 'src/runtime/node', fixtureBytes('node', 4096)),
    server: await put(root, 'src/runtime/server.mjs', 'export {};\n'),
    script: await put(root, 'src/runtime/run.sh', '#!/bin/sh\nexec node server.mjs\n'),
    deep: await put(root, 'src/runtime/deep.txt', 'deep\n'),
  };
  return {
    name: 'fixture',
    version: '1.0.0',
    description: 'test bundle',
    recipe: { fileName: 'apertus.yaml', bytes: Buffer.from('apiVersion: apertus.dev/v1\nkind: Bundle\n') },
    components: [
      {
        name: 'model',
        kind: 'model',
        provenance: { source: 'file:model', license: 'Apache-2.0' },
        layers: [
          { type: 'file', source: model.config, title: 'config.json' },
          { type: 'file', source: model.weights, title: 'weights.bin' },
          { type: 'file', source: model.copy, title: 'copy-of-weights.bin' },
          { type: 'file', source: model.tokenizer, title: `${LONG_DIR}/tokenizer.json` },
        ],
      },
      {
        name: 'runtime',
        kind: 'runtime',
        provenance: { source: 'node test', license: 'MIT' },
        layers: [
          { type: 'file', source: runtime.node, title: 'bin/node', mode: 0o755 },
          {
            type: 'tar',
            name: 'server',
            entries: [
              { source: runtime.server, path: 'server.mjs', mode: 0o644 },
              { source: runtime.script, path: 'bin/run.sh', mode: 0o755 },
              { source: runtime.deep, path: VERY_LONG_PATH, mode: 0o644 },
            ],
          },
        ],
      },
    ],
    services: [
      {
        name: 'chat',
        runtime: 'llamacpp',
        model: { component: 'model', path: 'weights.bin', id: 'test' },
        port: 18080,
        threads: 1,
        contextSize: 256,
        embeddings: false,
      },
    ],
    verify: { chat: { prompt: 'hello', maxTokens: 4 }, embeddings: null },
    requirements: {},
  };
}
