import { mkdir, mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApertusError } from '../../src/core/errors.js';
import { withFileRange } from '../../src/core/gpu/byte-range.js';
import { readSafetensorsHeader } from '../../src/core/gpu/safetensors-header.js';
import type { ProgressEvent } from '../../src/core/progress.js';
import { fetchHf } from '../../src/core/sources/hf/fetch-hf.js';
import { createContentHash } from '../../src/core/sources/hf/file-digest.js';
import { nextLink } from '../../src/core/sources/hf/hub-client.js';
import { parseHfSource } from '../../src/core/sources/hf/parse-hf-source.js';
import { compileGlob, createPathFilter } from '../../src/core/sources/hf/path-glob.js';
import { licenseFromFrontMatter, resolveHf } from '../../src/core/sources/hf/resolve-hf.js';
import type { SourceContext } from '../../src/core/sources/types.js';
import { apertusLikeRepo, type FakeHub, type FakeRepo, startFakeHub } from '../helpers/fake-hub.js';
import { writeHfCache } from '../helpers/hf-cache.js';
import { rejection } from '../helpers/rejection.js';

const TOKEN = 'hf_TestTokenQwErTy1234567890abcdefGHIJ';
const TOKEN_WITHOUT_ACCESS = 'hf_NoAccessToken0987654321zyxwvutsrqpo';
const APERTUS = 'swiss-ai/Apertus-8B-Instruct-2509';
const GATED = 'swiss-ai/Apertus-v1.5-8B';
const SHARD_1 = 'model-00001-of-00002.safetensors';
const SHARD_2 = 'model-00002-of-00002.safetensors';

let hub: FakeHub;
let apertus: FakeRepo;
let gated: FakeRepo;
let root: string;
let counter = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'apertus-source-hf-'));
  hub = await startFakeHub({
    pageSize: 3,
    tokens: { [TOKEN]: { gatedAccess: true }, [TOKEN_WITHOUT_ACCESS]: { gatedAccess: false } },
  });
  apertus = hub.addRepo(apertusLikeRepo(APERTUS));
  gated = hub.addRepo({ ...apertusLikeRepo(GATED), gated: true });
});

afterAll(async () => {
  await hub.close();
  await rm(root, { recursive: true, force: true });
});

/** A fresh cache and HF_HOME per test, so no test sees another's files or a real token. */
async function context(
  env: Record<string, string | undefined> = {},
  extra: Partial<SourceContext> = {},
): Promise<SourceContext & { hfHome: string }> {
  const dir = join(root, `run-${++counter}`);
  const hfHome = join(dir, 'hf-home');
  await mkdir(hfHome, { recursive: true });
  return {
    cacheDir: join(dir, 'cache'),
    env: { HF_ENDPOINT: hub.url, HF_HOME: hfHome, ...env },
    hfHome,
    ...extra,
  };
}

function cachePath(ctx: SourceContext, repo: FakeRepo, path: string): string {
  return join(ctx.cacheDir, 'hf', ...repo.id.split('/'), repo.sha, path);
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

function cdnRequestsFor(repo: FakeRepo, path: string) {
  const sha256 = repo.files.get(path)?.sha256 ?? '?';
  return hub.requests.filter((r) => r.origin === 'cdn' && r.url.startsWith(`/repos/${repo.id}/${sha256}?`));
}

describe('parseHfSource', () => {
  it('reads ORG/NAME with an optional branch, tag or commit, main by default', () => {
    expect(parseHfSource(`hf:${APERTUS}`)).toEqual({ repo: APERTUS, revision: 'main' });
    expect(parseHfSource(`hf:${APERTUS}@v1.0`)).toEqual({ repo: APERTUS, revision: 'v1.0' });
    expect(parseHfSource('hf:org/model@refs/pr/1')).toEqual({ repo: 'org/model', revision: 'refs/pr/1' });
    const sha = 'a'.repeat(40);
    expect(parseHfSource(`hf://${APERTUS}@${sha}`)).toEqual({ repo: APERTUS, revision: sha });
  });

  it.each([
    'swiss-ai/Apertus-8B',
    'hf:',
    'hf:Apertus-8B',
    'hf:swiss-ai/Apertus/8B',
    'hf:swiss-ai/Apertus-8B@',
    'hf:swiss ai/Apertus',
    'hf:swiss-ai/Apertus--8B',
    'hf:swiss-ai/Apertus@main..dev',
    'hf:swiss-ai/Apertus@-x',
  ])('refuses %j with the expected form in the hint', (source) => {
    let error: unknown;
    try {
      parseHfSource(source);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ApertusError);
    expect(error).toMatchObject({ code: 'hf-source-invalid', kind: 'user' });
    expect((error as ApertusError).hint).toContain('hf:ORG/NAME@REVISION');
  });
});

describe('path globs', () => {
  it('keeps * and ? inside a segment, lets ** span folders, and matches bare names at any depth', () => {
    const cases: [string, string, boolean][] = [
      ['*.safetensors', 'model-00001-of-00002.safetensors', true],
      ['*.safetensors', 'original/consolidated.safetensors', true],
      ['*.json', 'config.json', true],
      ['/*.json', 'onnx/config.json', false],
      ['onnx/*.json', 'onnx/config.json', true],
      ['onnx/*.json', 'onnx/sub/config.json', false],
      ['onnx/**/*.json', 'onnx/sub/config.json', true],
      ['onnx/**/*.json', 'onnx/config.json', true],
      ['onnx/', 'onnx/a/b.bin', true],
      ['onnx/', 'exports/onnx/model.onnx', true],
      ['/onnx/', 'exports/onnx/model.onnx', false],
      ['onnx/**', 'onnx', false],
      ['model-0000?-of-00002.safetensors', 'model-00002-of-00002.safetensors', true],
      ['model-0000?-of-00002.safetensors', 'model-00012-of-00002.safetensors', false],
      ['tokenizer.json', 'tokenizer_json', false],
      ['[ab].txt', '[ab].txt', true],
      ['[ab].txt', 'a.txt', false],
    ];
    for (const [glob, path, expected] of cases) {
      expect([glob, path, compileGlob(glob).test(path)]).toEqual([glob, path, expected]);
    }
  });

  it('applies include, then exclude', () => {
    const keep = createPathFilter({ include: ['*.safetensors', '*.json'], exclude: ['tokenizer*'] });
    expect(['config.json', SHARD_1, 'tokenizer.json', 'README.md'].filter(keep)).toEqual([
      'config.json',
      SHARD_1,
    ]);
    expect(createPathFilter({})('anything/at/all')).toBe(true);
    expect(() => compileGlob(' ')).toThrow(ApertusError);
  });
});

describe('hashes and headers', () => {
  it('computes the git blob id, not the plain sha1 (runtime-facts §2.5 test vector)', () => {
    const hash = createContentHash('git-sha1', 13).update('Hello, World!').digest('hex');
    expect(hash).toBe('b45ef6fec89518d314f546fd6c3025367b721684');
  });

  it('reads the next page from a Link header and the licence from front matter', () => {
    expect(nextLink('<https://huggingface.co/api/x?cursor=abc>; rel="next"')).toBe(
      'https://huggingface.co/api/x?cursor=abc',
    );
    expect(nextLink('<https://a/prev>; rel="prev", <https://a/next>; rel="next"')).toBe('https://a/next');
    expect(nextLink('<https://a/prev>; rel="prev"')).toBeUndefined();
    expect(licenseFromFrontMatter('---\nlicense: apache-2.0\ntags: [x]\n---\n# Card\n')).toBe('apache-2.0');
    expect(licenseFromFrontMatter('---\nlicense: other\nlicense_name: swiss-ai-tos\n---\n')).toBe(
      'swiss-ai-tos',
    );
    expect(licenseFromFrontMatter('# No front matter\nlicense: mit\n')).toBeUndefined();
  });
});

describe('resolveHf', () => {
  it('pins the revision to the commit, lists every file through all pages, and reads the licence', async () => {
    const ctx = await context();
    hub.resetCounters();
    const resolved = await resolveHf(`hf:${APERTUS}`, {}, ctx);
    expect(resolved).toMatchObject({
      source: `hf:${APERTUS}`,
      pinned: `hf://${APERTUS}@${apertus.sha}`,
      revision: apertus.sha,
      license: 'apache-2.0',
      repo: APERTUS,
      endpoint: hub.url,
    });
    const expected = [...apertus.files.values()].sort((a, b) => (a.path < b.path ? -1 : 1));
    expect(resolved.files).toEqual(
      expected.map((file) => ({
        path: file.path,
        size: file.content.length,
        ...(file.lfs ? { digest: `sha256:${file.sha256}` } : {}),
        gitOid: file.treeOid,
        lfs: file.lfs,
      })),
    );
    // 11 files and 1 folder at 3 entries a page: 4 pages, all listed at the commit.
    const pages = hub.requests.filter((r) => r.url.includes('/tree/'));
    expect(pages).toHaveLength(4);
    expect(
      pages.every((r) => r.url.includes(`/tree/${apertus.sha}?`) && r.url.includes('recursive=true')),
    ).toBe(true);
    expect(pages.slice(1).every((r) => r.url.includes('cursor='))).toBe(true);

    for (const revision of ['v1.0', apertus.sha]) {
      expect((await resolveHf(`hf:${APERTUS}@${revision}`, {}, ctx)).revision).toBe(apertus.sha);
    }
  });

  it('takes the Hub from hubUrl over HF_ENDPOINT, and the licence from cardData when the Hub gives it', async () => {
    hub.addRepo({
      id: 'test-org/card-only',
      cardData: { license: 'other', license_name: 'swiss-ai-terms' },
      files: [{ path: 'config.json', content: '{}\n' }],
    });
    const ctx = await context({ HF_ENDPOINT: 'http://127.0.0.1:9/nowhere' });
    const resolved = await resolveHf('hf:test-org/card-only', { hubUrl: hub.url }, ctx);
    expect(resolved.license).toBe('swiss-ai-terms');
    expect(resolved.files.map((f) => f.path)).toEqual(['config.json']);
  });

  it('filters files with include and exclude globs, and says so when nothing is left', async () => {
    const ctx = await context();
    const resolved = await resolveHf(
      `hf:${APERTUS}`,
      { include: ['*.safetensors', '*.json'], exclude: ['tokenizer*', '*.index.json'] },
      ctx,
    );
    expect(resolved.files.map((f) => f.path)).toEqual([
      'config.json',
      'generation_config.json',
      SHARD_1,
      SHARD_2,
      'special_tokens_map.json',
    ]);
    const error = await rejection(resolveHf(`hf:${APERTUS}`, { include: ['*.gguf'] }, ctx));
    expect(error).toMatchObject({ code: 'hf-no-files', kind: 'user' });
    expect(error.hint).toContain('config.json');
  });

  it('reports a missing repository or revision as hf-not-found', async () => {
    const ctx = await context();
    const repo = await rejection(resolveHf('hf:swiss-ai/Apertus-9000B', {}, ctx));
    expect(repo).toMatchObject({ code: 'hf-not-found', kind: 'user' });
    expect(repo.hint).toContain('HF_TOKEN');
    const revision = await rejection(resolveHf(`hf:${APERTUS}@no-such-branch`, {}, ctx));
    expect(revision).toMatchObject({ code: 'hf-not-found' });
    expect(revision.message).toContain('no-such-branch');
  });
});

describe('fetchHf', () => {
  it('downloads every file once, verified, and reuses the verified cache on the next run', async () => {
    const events: ProgressEvent[] = [];
    const ctx = await context({}, { onProgress: (event) => events.push(event) });
    const resolved = await resolveHf(`hf:${APERTUS}`, {}, ctx);
    hub.resetCounters();
    const fetched = await fetchHf(resolved, ctx);

    expect(fetched.map((f) => f.path)).toEqual(resolved.files.map((f) => f.path));
    for (const file of fetched) {
      const served = apertus.files.get(file.path)!;
      expect(file.origin).toBe('downloaded');
      expect(file.localPath).toBe(cachePath(ctx, apertus, file.path));
      expect((await readFile(file.localPath)).equals(served.content)).toBe(true);
      expect(hub.bytesServed(APERTUS, file.path)).toBe(served.content.length);
    }
    // LFS files came through the CDN origin.
    expect(cdnRequestsFor(apertus, SHARD_1)).toHaveLength(1);
    expect(await filesUnder(ctx.cacheDir)).not.toContainEqual(expect.stringMatching(/\.partial$/));
    const shard = await withFileRange(cachePath(ctx, apertus, SHARD_1), (read) =>
      readSafetensorsHeader(read, SHARD_1),
    );
    expect(shard.tensors.map((t) => t.name)).toContain('model.embed_tokens.weight');

    const total = resolved.files.reduce((sum, f) => sum + f.size, 0);
    const info = events.filter((e) => e.step === 'fetch' && e.status === 'info');
    expect(info.length).toBeGreaterThan(0);
    expect(info.every((e) => e.bytes !== undefined && e.bytes.done <= total && e.bytes.total === total)).toBe(
      true,
    );
    expect(events.at(-1)).toMatchObject({ step: 'fetch', status: 'ok', bytes: { done: total, total } });

    hub.resetCounters();
    const again = await fetchHf(resolved, ctx);
    expect(again.every((f) => f.origin === 'cache' && f.downloadedBytes === 0)).toBe(true);
    expect(hub.totalBytesServed()).toBe(0);
  });

  it('refuses a file whose bytes do not match the published hash and keeps nothing of it', async () => {
    const id = 'test-org/corrupted';
    const repo = hub.addRepo(apertusLikeRepo(id));
    const shard = repo.files.get(SHARD_2)!.content;
    const tampered = Buffer.from(shard);
    tampered[tampered.length - 100] = (tampered[tampered.length - 100] ?? 0) ^ 0xff;
    hub.serveInstead(id, SHARD_2, tampered);
    hub.serveInstead(
      id,
      'config.json',
      Buffer.from(repo.files.get('config.json')!.content.toString().toUpperCase()),
    );
    const ctx = await context();

    const lfs = await rejection(fetchHf(await resolveHf(`hf:${id}`, { include: [SHARD_2] }, ctx), ctx));
    expect(lfs).toMatchObject({ code: 'hf-digest-mismatch', kind: 'operation' });
    expect(lfs.message).toContain(SHARD_2);
    expect(lfs.message).toContain(`sha256:${repo.files.get(SHARD_2)!.sha256}`);
    expect(await exists(cachePath(ctx, repo, SHARD_2))).toBe(false);
    expect(await exists(`${cachePath(ctx, repo, SHARD_2)}.partial`)).toBe(false);

    const plain = await rejection(
      fetchHf(await resolveHf(`hf:${id}`, { include: ['config.json'] }, ctx), ctx),
    );
    expect(plain).toMatchObject({ code: 'hf-digest-mismatch' });
    expect(plain.message).toContain(`config.json`);
    expect(plain.message).toContain(`git-sha1:${repo.files.get('config.json')!.gitOid}`);
    expect(await filesUnder(ctx.cacheDir)).toEqual([]);
  });

  it('resumes with Range when the server closes the connection mid-file, fetching each byte once', async () => {
    const ctx = await context();
    const resolved = await resolveHf(`hf:${APERTUS}`, { include: [SHARD_1] }, ctx);
    const size = apertus.files.get(SHARD_1)!.content.length;
    hub.resetCounters();
    const cut = hub.interruptNext(APERTUS, SHARD_1, 300_000, 'close');
    const [fetched] = await fetchHf(resolved, ctx);
    await cut;
    expect(fetched?.origin).toBe('downloaded');
    // fetch drops the chunks still queued in its body stream when the socket dies, so the
    // partial file may hold a little less than the 300000 bytes sent; the resume asks for
    // exactly what it lacks.
    const ranges = cdnRequestsFor(apertus, SHARD_1).map((r) => r.range);
    expect(ranges).toEqual([undefined, expect.stringMatching(/^bytes=\d+-$/)]);
    const resumedAt = Number(/\d+/.exec(ranges[1] ?? '')?.[0]);
    expect(resumedAt).toBeGreaterThan(300_000 - 128 * 1024);
    expect(resumedAt).toBeLessThanOrEqual(300_000);
    expect(hub.bytesServed(APERTUS, SHARD_1)).toBe(300_000 + size - resumedAt);
    expect((await readFile(fetched!.localPath)).equals(apertus.files.get(SHARD_1)!.content)).toBe(true);
  });

  it('leaves a .partial file on abort and resumes it on the next run', async () => {
    const controller = new AbortController();
    const ctx = await context({}, { signal: controller.signal });
    const resolved = await resolveHf(`hf:${APERTUS}`, { include: [SHARD_2] }, ctx);
    const size = apertus.files.get(SHARD_2)!.content.length;
    const partial = `${cachePath(ctx, apertus, SHARD_2)}.partial`;
    hub.resetCounters();

    const stalled = hub.interruptNext(APERTUS, SHARD_2, 400_000, 'stall');
    const running = fetchHf(resolved, ctx);
    await stalled;
    while ((await stat(partial).catch(() => undefined))?.size !== 400_000) await sleep(5);
    controller.abort(new Error('interrupted by the test'));
    await expect(running).rejects.toThrow('interrupted by the test');
    expect((await stat(partial)).size).toBe(400_000);
    expect(await exists(cachePath(ctx, apertus, SHARD_2))).toBe(false);

    const [fetched] = await fetchHf(resolved, { ...ctx, signal: new AbortController().signal });
    expect(fetched).toMatchObject({ origin: 'downloaded', downloadedBytes: size - 400_000 });
    expect(hub.bytesServed(APERTUS, SHARD_2)).toBe(size);
    expect(cdnRequestsFor(apertus, SHARD_2).map((r) => r.range)).toEqual([undefined, 'bytes=400000-']);
    expect(await exists(partial)).toBe(false);
  });

  it('starts over when the server ignores the Range header (200 instead of 206)', async () => {
    const id = 'test-org/no-range';
    const repo = hub.addRepo(apertusLikeRepo(id));
    hub.ignoreRange(id, SHARD_1);
    const controller = new AbortController();
    const ctx = await context({}, { signal: controller.signal });
    const resolved = await resolveHf(`hf:${id}`, { include: [SHARD_1] }, ctx);
    const partial = `${cachePath(ctx, repo, SHARD_1)}.partial`;
    const stalled = hub.interruptNext(id, SHARD_1, 100_000, 'stall');
    const running = fetchHf(resolved, ctx);
    await stalled;
    while ((await stat(partial).catch(() => undefined))?.size !== 100_000) await sleep(5);
    controller.abort();
    await expect(running).rejects.toThrow();

    const [fetched] = await fetchHf(resolved, { ...ctx, signal: new AbortController().signal });
    expect((await readFile(fetched!.localPath)).equals(repo.files.get(SHARD_1)!.content)).toBe(true);
    expect(cdnRequestsFor(repo, SHARD_1).map((r) => [r.range, r.status])).toEqual([
      [undefined, 200],
      ['bytes=100000-', 200],
    ]);
  });
});

describe('gated repositories and the token', () => {
  it('asks for HF_TOKEN on a gated repo and works with a token that has access', async () => {
    const none = await rejection(resolveHf(`hf:${GATED}`, {}, await context()));
    expect(none).toMatchObject({ code: 'hf-gated', kind: 'user' });
    expect(none.hint).toContain('HF_TOKEN');
    expect(none.hint).toContain(`${hub.url}/${GATED}`);
    expect(none.hint).toContain('accept');

    const noAccess = await rejection(
      resolveHf(`hf:${GATED}`, {}, await context({ HF_TOKEN: TOKEN_WITHOUT_ACCESS })),
    );
    expect(noAccess).toMatchObject({ code: 'hf-gated' });
    expect(noAccess.hint).toContain('accept the model');

    const invalid = await rejection(resolveHf(`hf:${APERTUS}`, {}, await context({ HF_TOKEN: `${TOKEN}x` })));
    expect(invalid).toMatchObject({ code: 'hf-unauthorized' });
    expect(invalid.hint).toContain('HF_TOKEN');

    const ctx = await context({ HF_TOKEN: TOKEN });
    hub.resetCounters();
    const resolved = await resolveHf(`hf:${GATED}`, {}, ctx);
    const fetched = await fetchHf(resolved, ctx);
    expect(fetched).toHaveLength(gated.files.size);
    expect(fetched.every((f) => f.origin === 'downloaded')).toBe(true);

    // The token went to the Hub's origin only, never to the CDN it redirected to (§2.2).
    const hubSide = hub.requests.filter((r) => r.origin === 'hub');
    const cdnSide = hub.requests.filter((r) => r.origin === 'cdn');
    expect(cdnSide.length).toBeGreaterThan(0);
    expect(hubSide.every((r) => r.authorization === `Bearer ${TOKEN}`)).toBe(true);
    expect(cdnSide.every((r) => r.authorization === undefined)).toBe(true);

    // Nor anywhere on disk, in the resolved source, or in any error.
    for (const file of await filesUnder(ctx.cacheDir)) {
      expect((await readFile(file)).includes(TOKEN)).toBe(false);
    }
    expect(JSON.stringify(resolved)).not.toContain(TOKEN);
    for (const error of [none, noAccess, invalid]) {
      const text = [
        error.message,
        error.hint,
        JSON.stringify(error.details),
        error.stack,
        String(error.cause),
      ].join('\n');
      expect(text).not.toContain(TOKEN);
    }
  });

  it('keeps the token out of errors raised after it was sent, and out of a failed cache', async () => {
    const id = 'test-org/gated-corrupted';
    const repo = hub.addRepo({ ...apertusLikeRepo(id), gated: true });
    const original = repo.files.get('tokenizer.json')!.content;
    hub.serveInstead(id, 'tokenizer.json', Buffer.from(`{"token":"${TOKEN}"}`.padEnd(original.length, ' ')));
    const ctx = await context({ HF_TOKEN: TOKEN });
    const resolved = await resolveHf(`hf:${id}`, {}, ctx);
    const error = await rejection(fetchHf(resolved, ctx));
    expect(error.code).toBe('hf-digest-mismatch');
    expect([error.message, error.hint, JSON.stringify(error.details), error.stack].join('\n')).not.toContain(
      TOKEN,
    );
    for (const file of await filesUnder(ctx.cacheDir)) {
      expect((await readFile(file)).includes(TOKEN)).toBe(false);
    }
    expect(await exists(cachePath(ctx, repo, 'tokenizer.json'))).toBe(false);
  });

  it("keeps the token across the Hub's relative redirects for a renamed repo", async () => {
    hub.addRepo({
      ...apertusLikeRepo('swiss-ai/Apertus-Renamed'),
      gated: true,
      formerIds: ['swiss-ai/Apertus-Old'],
    });
    const ctx = await context({ HF_TOKEN: TOKEN });
    hub.resetCounters();
    const resolved = await resolveHf('hf:swiss-ai/Apertus-Old', { include: ['config.json', SHARD_1] }, ctx);
    expect(await fetchHf(resolved, ctx)).toHaveLength(2);
    const redirects = hub.requests.filter((r) => r.status === 307);
    expect(redirects.length).toBeGreaterThanOrEqual(4);
    const hubSide = hub.requests.filter((r) => r.origin === 'hub');
    expect(hubSide.every((r) => r.authorization === `Bearer ${TOKEN}`)).toBe(true);
    expect(hub.requests.filter((r) => r.origin === 'cdn').map((r) => r.authorization)).toEqual([undefined]);
  });

  it('uses the token that huggingface-cli login stored in $HF_HOME/token', async () => {
    const ctx = await context();
    await writeFile(join(ctx.hfHome, 'token'), `${TOKEN}\n`);
    expect((await resolveHf(`hf:${GATED}`, {}, ctx)).revision).toBe(gated.sha);
  });
});

/** A cache of the repo as huggingface_hub leaves it after a full download. */
async function writeHfCacheOf(hfHome: string, repo: FakeRepo): Promise<string> {
  return (await writeHfCache(hfHome, { id: repo.id, sha: repo.sha, files: repo.files.values() })).dir;
}

describe('the local Hugging Face cache', () => {
  it('reuses a complete snapshot: resolving and fetching download no file bytes', async () => {
    const ctx = await context();
    const repoDir = await writeHfCacheOf(ctx.hfHome, apertus);
    expect(
      await readFile(join(repoDir, 'snapshots', apertus.sha, 'assets', 'apertus-logo.svg'), 'utf8'),
    ).toContain('<svg');
    hub.resetCounters();
    const fetched = await fetchHf(await resolveHf(`hf:${APERTUS}`, {}, ctx), ctx);
    expect(hub.totalBytesServed()).toBe(0);
    expect(hub.requests.some((r) => r.url.includes('/resolve/') || r.origin === 'cdn')).toBe(false);
    expect(fetched.every((f) => f.origin === 'hf-cache' && f.downloadedBytes === 0)).toBe(true);
    const shard = fetched.find((f) => f.path === SHARD_1)!;
    expect(shard.localPath).toBe(join(repoDir, 'blobs', apertus.files.get(SHARD_1)!.sha256));
    expect(await filesUnder(ctx.cacheDir)).toEqual([]);
  });

  it('verifies before reuse, finds blobs of other snapshots, and never touches the HF cache', async () => {
    const ctx = await context();
    const repoDir = await writeHfCacheOf(ctx.hfHome, apertus);
    // Shard 1 only as a blob (the snapshot is of another commit); shard 2's blob is damaged.
    await unlink(join(repoDir, 'snapshots', apertus.sha, SHARD_1));
    const damagedBlob = join(repoDir, 'blobs', apertus.files.get(SHARD_2)!.sha256);
    const damaged = Buffer.from(apertus.files.get(SHARD_2)!.content);
    damaged[0] = (damaged[0] ?? 0) ^ 1;
    await writeFile(damagedBlob, damaged);
    hub.resetCounters();

    const fetched = await fetchHf(await resolveHf(`hf:${APERTUS}`, { include: ['*.safetensors'] }, ctx), ctx);
    expect(fetched.map((f) => [f.path, f.origin])).toEqual([
      [SHARD_1, 'hf-cache'],
      [SHARD_2, 'downloaded'],
    ]);
    expect(hub.bytesServed(APERTUS, SHARD_1)).toBe(0);
    expect(hub.bytesServed(APERTUS, SHARD_2)).toBe(apertus.files.get(SHARD_2)!.content.length);
    expect((await readFile(damagedBlob)).equals(damaged)).toBe(true);
  });
});
