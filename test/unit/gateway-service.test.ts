/**
 * The gateway's wiring and its pure parts: the files the bundle carries (copied as a host
 * gets them, they start), the key file's validation, scopes, and the limits' arithmetic.
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/project-root.js';
import {
  collectGatewayFiles,
  GATEWAY_FILES,
  GATEWAY_PATHS,
  gatewayDataPaths,
} from '../../src/core/runtimes/gateway/gateway-service.js';
import { collectRagFiles } from '../../src/core/runtimes/rag/rag-service.js';
import { allows, keyDigest, parseKeyFile } from '../../templates/gateway/api-keys.mjs';
import {
  createConcurrencyLimit,
  createRateLimiter,
  QueueFullError,
} from '../../templates/gateway/limits.mjs';

const execFileAsync = promisify(execFile);
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'apertus-gateway-service-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('gateway wiring', () => {
  it('keeps its per-host files under <root>/data/gateway', () => {
    expect(gatewayDataPaths('/var/lib/apertus')).toMatchObject({
      keys: '/var/lib/apertus/data/gateway/api-keys.json',
      accessLog: '/var/lib/apertus/data/gateway/access.log',
      tlsKey: '/var/lib/apertus/data/gateway/tls/key.pem',
    });
  });

  it('ships every module of templates/gateway, and the copy starts next to rag/', async () => {
    const files = await collectGatewayFiles(PROJECT_ROOT);
    expect(files.map((f) => f.path)).toEqual(GATEWAY_FILES.map((f) => `gateway/${f}`));
    const modules = (await readdir(path.join(PROJECT_ROOT, 'templates', 'gateway'))).filter((f) =>
      f.endsWith('.mjs'),
    );
    expect([...GATEWAY_FILES].sort()).toEqual(modules.sort());

    for (const file of [...files, ...(await collectRagFiles(PROJECT_ROOT))]) {
      await mkdir(path.join(dir, path.dirname(file.path)), { recursive: true });
      await copyFile(file.source, path.join(dir, file.path));
    }
    // Every import resolved (ESM links before it runs); then it refuses plain HTTP unasked.
    const run = await execFileAsync(
      process.execPath,
      [path.join(dir, GATEWAY_PATHS.server), '--listen', '127.0.0.1:0'],
      {
        cwd: dir,
      },
    ).catch((e: { code: number; stderr: string }) => e);
    expect(run).toMatchObject({ code: 2 });
    expect((run as { stderr: string }).stderr).toContain('--insecure-http');
  });
});

describe('gateway key file', () => {
  const entry = (over: Record<string, unknown> = {}) => ({
    name: 'alice',
    sha256: keyDigest('apk-x'),
    scopes: ['chat'],
    created: 'now',
    ...over,
  });
  const file = (keys: unknown[]) => JSON.stringify({ format: 'apertus-api-keys', formatVersion: 1, keys });

  it('reads names, digests, scopes and revocations', () => {
    const keys = parseKeyFile(
      file([entry(), entry({ name: 'bob', sha256: keyDigest('apk-y'), revoked: 'then' })]),
    );
    expect(keys.get(keyDigest('apk-x'))).toMatchObject({ name: 'alice', revoked: null });
    expect(keys.get(keyDigest('apk-y'))?.revoked).toBe('then');
  });

  it('refuses a file with a plain key, a bad scope, a bad name or a name twice', () => {
    expect(() => parseKeyFile(file([entry({ sha256: 'apk-plain-key' })]))).toThrow(/sha256/);
    expect(() => parseKeyFile(file([entry({ scopes: ['root'] })]))).toThrow(/scopes/);
    expect(() => parseKeyFile(file([entry({ name: 'claimed:x' })]))).toThrow(/name/);
    expect(() => parseKeyFile(file([entry(), entry({ sha256: keyDigest('apk-z') })]))).toThrow(/twice/);
    expect(() => parseKeyFile('{"keys":[]}')).toThrow(/apertus-api-keys/);
  });

  it('lets admin do all, rag every collection, rag:C only C', () => {
    expect(allows(new Set(['admin']), 'chat')).toBe(true);
    expect(allows(new Set(['rag']), 'rag:x')).toBe(true);
    expect(allows(new Set(['rag:x']), 'rag:x')).toBe(true);
    expect(allows(new Set(['rag:x']), 'rag:y')).toBe(false);
    expect(allows(new Set(['embeddings']), 'chat')).toBe(false);
  });
});

describe('gateway limits', () => {
  it('refills a bucket at its rate and names the wait', () => {
    let t = 0;
    const limiter = createRateLimiter({ rate: 0.5, burst: 2, now: () => t });
    expect(limiter.take('a').ok).toBe(true);
    expect(limiter.take('a').ok).toBe(true);
    expect(limiter.take('a')).toEqual({ ok: false, retryAfterSeconds: 2 });
    expect(limiter.take('b').ok).toBe(true);
    t = 2;
    expect(limiter.take('a').ok).toBe(true);
    expect(limiter.take('a').ok).toBe(false);
  });

  it('queues beyond the limit, in order, and refuses beyond the queue', async () => {
    const limit = createConcurrencyLimit({ limit: 1, queue: 1 });
    const first = await limit.acquire();
    const second = limit.acquire();
    await expect(limit.acquire()).rejects.toBeInstanceOf(QueueFullError);
    expect([limit.active, limit.queued]).toEqual([1, 1]);
    first();
    first();
    const release = await second;
    expect([limit.active, limit.queued]).toEqual([1, 0]);
    release();
    expect(limit.active).toBe(0);
  });
});
