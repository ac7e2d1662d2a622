/**
 * `check --recipe` of a recipe with an hf: model: read from a real on-disk Hugging Face
 * cache with HF_HUB_OFFLINE=1 (no server at all), or from a local server speaking the Hub
 * protocol with only the byte ranges the check needs.
 */
import { mkdir, mkdtemp, rm, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CheckSubject, loadCheckSubject } from '../../src/core/operations/check-subject.js';
import { isHfHubOffline } from '../../src/core/sources/hf/local-hf-cache.js';
import { apertusLikeRepo, type FakeHub, type FakeRepo, startFakeHub } from '../helpers/fake-hub.js';
import { writeHfCache } from '../helpers/hf-cache.js';
import { writeHfRecipe } from '../helpers/hf-recipe.js';
import { rejection } from '../helpers/rejection.js';
import { type WatchedPort, watchPort } from '../helpers/watched-port.js';

const REPO = 'swiss-ai/Apertus-8B-Instruct-2509';
const TOKEN = 'hf_checkRecipeTokenNeverPrinted0123456789';
const SHARDS = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];

let work: string;
let counter = 0;
let nowhere: WatchedPort;
const spec = apertusLikeRepo(REPO);
const content = (file: string): Buffer => {
  const found = spec.files.find((f) => f.path === file);
  if (!found) throw new Error(`no ${file} in the repo spec`);
  return Buffer.from(found.content);
};
const config = JSON.parse(content('config.json').toString()) as Record<string, number>;
/** What the repo's own shard index says the weights take. */
const indexedWeightBytes = (
  JSON.parse(content('model.safetensors.index.json').toString()) as { metadata: { total_size: number } }
).metadata.total_size;
const repoBytes = spec.files.reduce((sum, f) => sum + Buffer.byteLength(f.content), 0);

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'apertus-check-recipe-hf-'));
  nowhere = await watchPort();
});

afterAll(async () => {
  await nowhere.close();
  await rm(work, { recursive: true, force: true });
});

/** A recipe directory with `hf:REPO@revision` and an empty HF_HOME of its own. */
async function setUp(revision = 'main'): Promise<{ recipe: string; hfHome: string }> {
  const dir = path.join(work, `run-${++counter}`);
  const recipe = path.join(dir, 'recipe');
  const hfHome = path.join(dir, 'hf-home');
  await mkdir(recipe, { recursive: true });
  await mkdir(hfHome, { recursive: true });
  await writeHfRecipe(recipe, REPO, { revision });
  return { recipe, hfHome };
}

function onlyWorkload(subject: CheckSubject | undefined) {
  expect(subject?.workloads).toHaveLength(1);
  return subject?.workloads[0];
}

describe('HF_HUB_OFFLINE', () => {
  it("is true for huggingface_hub's true values, in HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE", () => {
    const table = ['1', 'true', 'YES', 'On', ' 1 ', '0', 'false', '', 'no'].map((value) => [
      value,
      isHfHubOffline({ HF_HUB_OFFLINE: value }),
      isHfHubOffline({ TRANSFORMERS_OFFLINE: value }),
    ]);
    expect(table).toEqual([
      ['1', true, true],
      ['true', true, true],
      ['YES', true, true],
      ['On', true, true],
      [' 1 ', true, true],
      ['0', false, false],
      ['false', false, false],
      ['', false, false],
      ['no', false, false],
    ]);
    expect(isHfHubOffline({})).toBe(false);
  });
});

describe('check --recipe, hf: source in the Hugging Face cache with HF_HUB_OFFLINE=1', () => {
  it('reads config.json and the safetensors headers from the cache, and contacts nothing', async () => {
    const { recipe, hfHome } = await setUp();
    const { sha } = await writeHfCache(hfHome, spec);
    const before = nowhere.connections();
    const subject = await loadCheckSubject({
      recipe,
      env: { HF_HOME: hfHome, HF_HUB_OFFLINE: '1', HF_ENDPOINT: nowhere.url, HF_TOKEN: TOKEN },
    });
    expect(nowhere.connections()).toBe(before);
    expect(subject).toMatchObject({ kind: 'recipe', ports: [], needsContainers: true });
    const workload = onlyWorkload(subject);
    expect(workload).toMatchObject({
      label: 'model/config.json (vLLM)',
      device: 'gpu',
      weights: { bytes: indexedWeightBytes, source: '2 safetensors headers' },
    });
    expect(workload?.shape).toMatchObject({
      numLayers: config.num_hidden_layers,
      numKvHeads: config.num_key_value_heads,
      maxPositionEmbeddings: config.max_position_embeddings,
    });
    expect(subject?.disk).toEqual({
      kind: 'estimate',
      bytes: repoBytes,
      detail: `the recipe's component files (model: as the Hugging Face cache holds ${REPO}@${sha.slice(0, 12)}), every byte counted, since a recipe has no digests to match the host's store`,
    });
    expect(JSON.stringify(subject)).not.toContain(TOKEN);
  });

  it('resolves a pinned commit without refs/, and sizes the weights from config.json when a shard is not cached', async () => {
    const { dir, sha } = await writeHfCache(path.join(work, 'pinned-hf-home'), { ...spec, refs: [] });
    const { recipe } = await setUp(sha);
    await unlink(path.join(dir, 'snapshots', sha, SHARDS[1] as string));
    const subject = await loadCheckSubject({
      recipe,
      env: { HF_HOME: path.join(work, 'pinned-hf-home'), HF_HUB_OFFLINE: 'true', HF_ENDPOINT: nowhere.url },
    });
    const workload = onlyWorkload(subject);
    expect(workload?.label).toBe('model/config.json (vLLM)');
    // The index names a shard the cache lacks: one header would undercount.
    expect(workload?.weights).toBeUndefined();
    expect(subject?.disk).toMatchObject({ bytes: repoBytes - content(SHARDS[1] as string).length });
  });

  it('names the repo, the revision and how to fill the cache when the cache lacks it', async () => {
    const { recipe, hfHome } = await setUp('v1.0');
    const env = { HF_HOME: hfHome, HF_HUB_OFFLINE: '1', HF_ENDPOINT: nowhere.url };
    const before = nowhere.connections();
    const error = await rejection(loadCheckSubject({ recipe, env }));
    expect(error).toMatchObject({ code: 'hf-not-cached', kind: 'user' });
    expect(error.message).toBe(
      `HF_HUB_OFFLINE is set, and the Hugging Face cache ${path.join(hfHome, 'hub')} does not know revision v1.0 of ${REPO}.`,
    );
    expect(error.hint).toContain(`hf download ${REPO} --revision v1.0`);
    expect(error.hint).toContain('unset HF_HUB_OFFLINE');
    expect(nowhere.connections()).toBe(before);
  });

  it('names the missing config.json when the cached snapshot lacks it', async () => {
    const { recipe, hfHome } = await setUp();
    const { sha } = await writeHfCache(hfHome, {
      ...spec,
      files: spec.files.filter((f) => f.path !== 'config.json'),
    });
    const error = await rejection(
      loadCheckSubject({ recipe, env: { HF_HOME: hfHome, HF_HUB_OFFLINE: '1', HF_ENDPOINT: nowhere.url } }),
    );
    expect(error).toMatchObject({ code: 'hf-not-cached', kind: 'user' });
    expect(error.message).toBe(
      `HF_HUB_OFFLINE is set, and the Hugging Face cache holds ${REPO}@main (commit ${sha}) without config.json, which the fit check reads the model's shape from.`,
    );
  });
});

describe('check --recipe, hf: source on the Hub', () => {
  let hub: FakeHub;
  let repo: FakeRepo;

  beforeAll(async () => {
    hub = await startFakeHub({ tokens: { [TOKEN]: { gatedAccess: true } } });
    repo = hub.addRepo(spec);
  });

  afterAll(async () => {
    await hub.close();
  });

  const fileRequests = () =>
    hub.requests
      .filter((r) => r.origin === 'cdn' || r.url.includes('/resolve/'))
      .map((r) => ({ origin: r.origin, file: fileOf(r.url), range: r.range, status: r.status }));
  const fileOf = (url: string) =>
    decodeURIComponent(
      url.includes('/resolve/')
        ? (url.split('/resolve/')[1] ?? '').split('/').slice(1).join('/')
        : (new URL(url, 'http://x').searchParams.get('path') ?? ''),
    );

  it('with an empty cache, fetches config.json and each shard header by Range, nothing more', async () => {
    const { recipe, hfHome } = await setUp();
    hub.resetCounters();
    const subject = await loadCheckSubject({
      recipe,
      env: { HF_HOME: hfHome, HF_ENDPOINT: hub.url, HF_TOKEN: TOKEN },
    });
    const workload = onlyWorkload(subject);
    expect(workload).toMatchObject({
      label: 'model/config.json (vLLM)',
      weights: { bytes: indexedWeightBytes, source: '2 safetensors headers' },
    });
    const configSize = content('config.json').length;
    const headerBytes = SHARDS.map((shard) => Number(content(shard).readBigUInt64LE(0)));
    // config.json is a plain git file the Hub serves itself; shards are LFS, redirected to the CDN.
    expect(fileRequests()).toEqual([
      { origin: 'hub', file: 'config.json', range: `bytes=0-${configSize - 1}`, status: 206 },
      ...SHARDS.flatMap((shard, i) => [
        { origin: 'hub', file: shard, range: 'bytes=0-7', status: 302 },
        { origin: 'cdn', file: shard, range: 'bytes=0-7', status: 206 },
        { origin: 'hub', file: shard, range: `bytes=8-${8 + (headerBytes[i] ?? 0) - 1}`, status: 302 },
        { origin: 'cdn', file: shard, range: `bytes=8-${8 + (headerBytes[i] ?? 0) - 1}`, status: 206 },
      ]),
    ]);
    expect(hub.bytesServed(REPO, 'config.json')).toBe(configSize);
    for (const [i, shard] of SHARDS.entries()) {
      expect(hub.bytesServed(REPO, shard)).toBe(8 + (headerBytes[i] ?? 0));
    }
    expect(hub.totalBytesServed()).toBe(configSize + headerBytes.reduce((sum, n) => sum + 8 + n, 0));
    // The token goes to the Hub only, never to the CDN, and never into the result.
    expect(hub.requests.filter((r) => r.origin === 'cdn').every((r) => r.authorization === undefined)).toBe(
      true,
    );
    expect(
      hub.requests.filter((r) => r.origin === 'hub').every((r) => r.authorization === `Bearer ${TOKEN}`),
    ).toBe(true);
    expect(JSON.stringify(subject)).not.toContain(TOKEN);
    // The Hub's listing sizes the whole repository, not what was read.
    expect(subject?.disk).toEqual({
      kind: 'estimate',
      bytes: repoBytes,
      detail:
        "the recipe's component files, every byte counted, since a recipe has no digests to match the host's store",
    });
  });

  it('pins the revision on the Hub, and reads the bytes the cache holds from the cache', async () => {
    const { recipe, hfHome } = await setUp();
    await writeHfCache(hfHome, { ...spec, sha: repo.sha });
    hub.resetCounters();
    const subject = await loadCheckSubject({ recipe, env: { HF_HOME: hfHome, HF_ENDPOINT: hub.url } });
    expect(onlyWorkload(subject)?.weights?.bytes).toBe(indexedWeightBytes);
    expect(fileRequests()).toEqual([]);
    expect(hub.requests.map((r) => new URL(r.url, hub.url).pathname)).toContain(
      `/api/models/${REPO}/revision/main`,
    );
  });

  it('an unreachable Hub says how to check from the cache alone', async () => {
    const { recipe, hfHome } = await setUp();
    const closed = await watchPort();
    await closed.close();
    const error = await rejection(
      loadCheckSubject({ recipe, env: { HF_HOME: hfHome, HF_ENDPOINT: closed.url } }),
    );
    expect(error).toMatchObject({ code: 'hf-unreachable', kind: 'operation' });
    expect(error.hint).toContain('set HF_HUB_OFFLINE=1');
  });
});
