/**
 * Ctrl-C on a real `bin/apertus.js bundle` process: SIGINT stops the download, the process
 * exits 130 with one line saying that rerunning resumes, and the rerun does. The Hub is the
 * fake one (Hugging Face cannot be reached from here). Needs `npm run build` first.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apertusLikeRepo, type FakeHub, type FakeRepo, startFakeHub } from '../helpers/fake-hub.js';
import { writeHfRecipe } from '../helpers/hf-recipe.js';

const BIN = fileURLToPath(new URL('../../bin/apertus.js', import.meta.url));
const REPO = 'swiss-ai/Apertus-8B-Instruct-2509';
const SHARD = 'model-00001-of-00002.safetensors';

let work: string;
let hub: FakeHub;
let repo: FakeRepo;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'apertus-bundle-sigint-'));
  hub = await startFakeHub();
  repo = hub.addRepo(apertusLikeRepo(REPO));
  await writeHfRecipe(work, REPO, { include: [SHARD, 'config.json'] });
});

afterAll(async () => {
  await hub?.close();
  await rm(work, { recursive: true, force: true });
});

describe('bundle and SIGINT', () => {
  it('exits 130 on Ctrl-C, keeps the partial file, and the rerun resumes it', async () => {
    const cache = path.join(work, 'cache');
    const out = path.join(work, 'out');
    const env = { ...process.env, CI: 'true', HF_ENDPOINT: hub.url, HF_HOME: path.join(work, 'hf-home') };
    const args = [BIN, 'bundle', work, '-o', out, '--cache-dir', cache];
    const cutAt = 200_000;
    const partial = path.join(cache, 'hf', ...REPO.split('/'), repo.sha, `${SHARD}.partial`);
    hub.resetCounters();
    const stalled = hub.interruptNext(REPO, SHARD, cutAt, 'stall');

    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await stalled;
    while ((await stat(partial).catch(() => undefined))?.size !== cutAt) await sleep(5);
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr.trim().split('\n').at(-1)).toBe(
      `Interrupted. Run the same command again: downloads resume from ${cache}.`,
    );
    expect((await stat(partial)).size).toBe(cutAt);

    hub.resetCounters();
    const rerun = await promisify(execFile)(process.execPath, [...args, '--json'], { env });
    expect(JSON.parse(rerun.stdout).manifestDigest).toMatch(/^sha256:/);
    expect(hub.bytesServed(REPO, SHARD)).toBe(repo.files.get(SHARD)!.content.length - cutAt);
  });
});
