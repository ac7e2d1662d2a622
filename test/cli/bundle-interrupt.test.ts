/**
 * `apertus bundle` interrupted mid-download (as Ctrl-C does, through the command's signal)
 * and run again: the second run fetches only the bytes the first did not, and the bundle is
 * the one an uninterrupted run writes. Also what the progress looks like on a TTY and in CI.
 * Hugging Face cannot be reached from here: the fake Hub speaks its documented protocol.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apertusLikeRepo, type FakeHub, type FakeRepo, startFakeHub } from '../helpers/fake-hub.js';
import { writeHfRecipe } from '../helpers/hf-recipe.js';
import { runCli, stripAnsi } from '../helpers/run-cli.js';

const REPO = 'swiss-ai/Apertus-8B-Instruct-2509';
const SHARD = 'model-00002-of-00002.safetensors';
const EXCLUDED = ['README.md', '.gitattributes'];

let work: string;
let hub: FakeHub;
let repo: FakeRepo;
let env: NodeJS.ProcessEnv;
let counter = 0;

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'apertus-bundle-interrupt-'));
  hub = await startFakeHub();
  repo = hub.addRepo(apertusLikeRepo(REPO));
  env = { HF_ENDPOINT: hub.url, HF_HOME: path.join(work, 'hf-home') };
  await writeHfRecipe(work, REPO, { exclude: EXCLUDED });
});

afterAll(async () => {
  await hub?.close();
  await rm(work, { recursive: true, force: true });
});

/** A fresh cache and output directory per run family. */
function dirs() {
  const dir = path.join(work, `run-${++counter}`);
  return { cache: path.join(dir, 'cache'), out: path.join(dir, 'out') };
}

/** Files of the component: what the bundle downloads (the card is read for the licence only). */
function componentFiles(): string[] {
  return [...repo.files.keys()].filter((file) => !EXCLUDED.includes(file));
}

function componentBytesServed(): number {
  return componentFiles().reduce((sum, file) => sum + hub.bytesServed(REPO, file), 0);
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath, e.name));
}

describe('bundle interrupted and run again', () => {
  it('keeps the partial download on Ctrl-C (exit 130), and the rerun fetches only the rest', async () => {
    const uninterrupted = dirs();
    const reference = await runCli(
      ['bundle', work, '-o', uninterrupted.out, '--cache-dir', uninterrupted.cache, '--json'],
      { env },
    );
    expect(reference.exitCode, reference.stdout).toBe(0);
    const referenceDigest = JSON.parse(reference.stdout).manifestDigest as string;
    expect(referenceDigest).toMatch(/^sha256:[0-9a-f]{64}$/);

    const { cache, out } = dirs();
    const shardSize = repo.files.get(SHARD)!.content.length;
    const cutAt = 300_000;
    expect(shardSize).toBeGreaterThan(cutAt);
    const partial = path.join(cache, 'hf', ...REPO.split('/'), repo.sha, `${SHARD}.partial`);
    hub.resetCounters();
    const stalled = hub.interruptNext(REPO, SHARD, cutAt, 'stall');
    const controller = new AbortController();
    const running = runCli(['bundle', work, '-o', out, '--cache-dir', cache], {
      env: { ...env, CI: 'true' },
      signal: controller.signal,
    });
    await stalled;
    // Abort once the shard's first bytes are on disk and every other file is done.
    const others = componentFiles().length - 1;
    for (;;) {
      const files = await filesUnder(cache);
      const done = files.filter((file) => !file.endsWith('.partial')).length;
      if ((await stat(partial).catch(() => undefined))?.size === cutAt && done === others) break;
      await sleep(5);
    }
    controller.abort();
    const interrupted = await running;
    expect(interrupted.exitCode, interrupted.stderr).toBe(130);
    expect(interrupted.stdout).toBe('');
    const lastLine = interrupted.stderr.trim().split('\n').at(-1);
    expect(lastLine).toBe(`Interrupted. Run the same command again: downloads resume from ${cache}.`);
    expect((await stat(partial)).size).toBe(cutAt);
    expect(await readdir(out).catch(() => [])).toEqual([]);
    const firstRun = componentBytesServed();

    hub.resetCounters();
    const resumed = await runCli(['bundle', work, '-o', out, '--cache-dir', cache, '--json'], { env });
    expect(resumed.exitCode, resumed.stdout).toBe(0);
    // Only the rest of the shard came over the wire, asked for with a Range from where it stopped.
    expect(hub.bytesServed(REPO, SHARD)).toBe(shardSize - cutAt);
    expect(componentBytesServed()).toBe(shardSize - cutAt);
    const total = componentFiles().reduce((sum, file) => sum + repo.files.get(file)!.content.length, 0);
    expect(firstRun + componentBytesServed()).toBe(total);
    const shardRequests = hub.requests.filter((r) => r.origin === 'cdn' && r.url.includes(`path=${SHARD}`));
    expect(shardRequests.map((r) => r.range)).toEqual([`bytes=${cutAt}-`]);
    expect(JSON.parse(resumed.stdout).manifestDigest).toBe(referenceDigest);
    expect((await filesUnder(cache)).filter((file) => file.endsWith('.partial'))).toEqual([]);
  });

  it('with --json, says it was interrupted in JSON only', async () => {
    const { cache, out } = dirs();
    const stalled = hub.interruptNext(REPO, SHARD, 100_000, 'stall');
    const controller = new AbortController();
    const running = runCli(['bundle', work, '-o', out, '--cache-dir', cache, '--json'], {
      env,
      signal: controller.signal,
    });
    await stalled;
    controller.abort();
    const run = await running;
    expect(run.exitCode).toBe(130);
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual({
      ok: false,
      error: {
        code: 'interrupted',
        message: 'Interrupted.',
        hint: `Run the same command again: downloads resume from ${cache}.`,
        details: null,
      },
    });
  });
});

describe('bundle download progress', () => {
  it('shows bytes per component on a TTY, redrawn in place, and few plain lines in CI', async () => {
    const total = componentFiles().reduce((sum, file) => sum + repo.files.get(file)!.content.length, 0);
    expect(total).toBeGreaterThan(1e6);
    expect(total).toBeLessThan(1e7);
    const totalText = `${(total / 1e6).toFixed(2)} MB`;

    // listr2 draws live only when process.stdout is a terminal too; here it is a pipe.
    const live = dirs();
    const descriptor = Object.getOwnPropertyDescriptor(process.stdout, 'isTTY');
    Object.defineProperty(process.stdout, 'isTTY', { value: true, configurable: true });
    const tty = await runCli(['bundle', work, '-o', live.out, '--cache-dir', live.cache], {
      tty: true,
      env: { ...env, TERM: 'xterm' },
    }).finally(() => {
      if (descriptor) Object.defineProperty(process.stdout, 'isTTY', descriptor);
      else delete (process.stdout as { isTTY?: boolean }).isTTY;
    });
    expect(tty.exitCode, tty.stderr).toBe(0);
    // Each frame erases the last (cursor up, erase line) and draws the task list again.
    expect(tty.stderr).toContain('\u001b[1A\u001b[2K');
    const frames = [...stripAnsi(tty.stderr).matchAll(/› model {2}([\d.]+ k?M?B) \/ ([\d.]+ MB)/g)];
    expect(frames.length).toBeGreaterThan(1);
    expect(frames.every((frame) => frame[2] === totalText)).toBe(true);
    expect(frames.at(-1)?.[1]).toBe(totalText);

    const plain = dirs();
    const ci = await runCli(['bundle', work, '-o', plain.out, '--cache-dir', plain.cache], {
      env: { ...env, CI: 'true' },
    });
    expect(ci.exitCode, ci.stderr).toBe(0);
    const modelLines = ci.stderr.split('\n').filter((line) => /\bmodel {2}\d/.test(line));
    // Its first line, then (this run takes far less than 10 s) only the end of the component.
    expect(modelLines.length).toBeGreaterThanOrEqual(1);
    expect(modelLines.length).toBeLessThanOrEqual(2);
    expect(modelLines.at(-1)).toContain(`model  ${totalText} / ${totalText}`);

    // A terminal on stderr but stdout redirected: listr2 prints lines, so these stay few too.
    const piped = dirs();
    const redirected = await runCli(['bundle', work, '-o', piped.out, '--cache-dir', piped.cache], {
      tty: true,
      env: { ...env, TERM: 'xterm' },
    });
    expect(redirected.exitCode, redirected.stderr).toBe(0);
    expect(
      redirected.stderr.split('\n').filter((line) => /\bmodel {2}\d/.test(line)).length,
    ).toBeLessThanOrEqual(2);
  });
});
