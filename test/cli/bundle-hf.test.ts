/**
 * `apertus bundle` of a recipe with an hf: source, against a local server that speaks the
 * documented Hub protocol (Hugging Face itself cannot be reached from here).
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apertusLikeRepo, type FakeHub, startFakeHub } from '../helpers/fake-hub.js';
import { runCli } from '../helpers/run-cli.js';

const TOKEN = 'hf_apertusTestTokenNeverWritten0123456789';
const REPO = 'swiss-ai/Apertus-8B-Instruct-2509';

let work: string;
let hub: FakeHub;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'apertus-bundle-hf-'));
  hub = await startFakeHub({ tokens: { [TOKEN]: { gatedAccess: true } } });
  hub.addRepo({ ...apertusLikeRepo(REPO), gated: true });
  env = { CI: 'true', HF_ENDPOINT: hub.url, HF_TOKEN: TOKEN, HF_HOME: path.join(work, 'hf-home') };
  await writeFile(
    path.join(work, 'apertus.yaml'),
    [
      'apiVersion: apertus.dev/v1',
      'kind: Bundle',
      'metadata:',
      '  name: apertus-8b',
      '  version: 1.0.0',
      'components:',
      '  - name: model',
      '    kind: model',
      `    source: hf:${REPO}@main`,
      '    exclude: ["README.md", ".gitattributes"]',
      '',
    ].join('\n'),
  );
});

afterAll(async () => {
  await hub?.close();
  await rm(work, { recursive: true, force: true });
});

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

describe('bundle with an hf: source', () => {
  it('pins the revision in --dry-run without downloading, then bundles the verified files', async () => {
    const out = path.join(work, 'out');
    const cache = ['--cache-dir', path.join(work, 'cache')];
    const dry = await runCli(['bundle', work, '-o', out, ...cache, '--dry-run', '--json'], { env });
    expect(dry.exitCode, dry.stdout).toBe(0);
    const plan = JSON.parse(dry.stdout).plan;
    const model = plan.components[0];
    expect(model).toMatchObject({
      name: 'model',
      revision: expect.stringMatching(/^[0-9a-f]{40}$/),
      license: 'apache-2.0',
    });
    expect(model.source).toContain(model.revision);
    expect(model.files).toBeGreaterThanOrEqual(5);
    const downloaded = hub.totalBytesServed();

    const written = await runCli(['bundle', work, '-o', out, ...cache, '--json'], { env });
    expect(written.exitCode, written.stdout).toBe(0);
    const result = JSON.parse(written.stdout);
    expect(hub.totalBytesServed() - downloaded).toBeGreaterThanOrEqual(model.bytes);

    const inspected = JSON.parse((await runCli(['inspect', result.path, '--json'])).stdout);
    const component = inspected.components.find((c: { name: string }) => c.name === 'model');
    expect(component.provenance).toEqual({
      source: model.source,
      revision: model.revision,
      license: 'apache-2.0',
      url: `${hub.url.replace(/\/+$/, '')}/${REPO}/tree/${model.revision}`,
    });
    expect(component.contents.map((c: { title: string }) => c.title)).toEqual(
      expect.arrayContaining(['config.json', 'model-00001-of-00002.safetensors', 'tokenizer.json']),
    );
    const verified = await runCli(['verify', result.path, '--json']);
    expect(JSON.parse(verified.stdout).ok).toBe(true);

    // A second bundle reuses the cache: nothing is downloaded again.
    hub.resetCounters();
    const again = await runCli(['bundle', work, '-o', path.join(work, 'out2'), ...cache, '--json'], { env });
    expect(again.exitCode).toBe(0);
    expect(hub.totalBytesServed()).toBeLessThan(10_000); // metadata only: revision, tree, card
    expect(JSON.parse(again.stdout).manifestDigest).toBe(result.manifestDigest);

    // The token reached the Hub, and nothing written: not the bundle, not the cache.
    expect(hub.requests.some((r) => r.authorization === `Bearer ${TOKEN}`)).toBe(true);
    for (const file of [result.path, ...(await filesUnder(path.join(work, 'cache')))]) {
      expect((await readFile(file)).includes(TOKEN), file).toBe(false);
    }
  });

  it('says what to do when the repo is gated and no token is set', async () => {
    const run = await runCli(['bundle', work, '--dry-run', '--json'], { env: { ...env, HF_TOKEN: '' } });
    expect(run.exitCode).not.toBe(0);
    const error = JSON.parse(run.stdout).error;
    expect(error.code).toBe('hf-gated');
    expect(error.hint).toContain('HF_TOKEN');
  });
});
