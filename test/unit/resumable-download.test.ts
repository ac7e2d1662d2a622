/**
 * The download both hf: and oci: use, against a real HTTP server on 127.0.0.1 that answers
 * Range requests the ways servers do (206, 200 ignoring it, 416, a wrong range, a wrong
 * size), and real files. The sources' own tests cover the Hub and the registry.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApertusError } from '../../src/core/errors.js';
import { downloadResumable, PARTIAL_SUFFIX } from '../../src/core/sources/resumable-download.js';
import { SourceUnavailableError } from '../../src/core/sources/retry.js';

type Behaviour = 'range' | 'ignore-range' | 'refuse-range' | 'wrong-range' | 'wrong-size' | 'corrupt';

const content = randomBytes(300_000);
const sha256 = createHash('sha256').update(content).digest('hex');
let server: Server;
let url: string;
let root: string;
let behaviour: Behaviour = 'range';
const requests: { range: string | undefined; status: number; bytes: number }[] = [];

function serve(req: IncomingMessage, res: ServerResponse) {
  // 'wrong-size': the server holds one byte more than the expected content; 'corrupt': one
  // byte near the end differs.
  const file = behaviour === 'wrong-size' ? Buffer.concat([content, Buffer.from('x')]) : Buffer.from(content);
  if (behaviour === 'corrupt') file[file.length - 5] = (file[file.length - 5] ?? 0) ^ 0xff;
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  const start = range ? Number(range[1]) : 0;
  let status = 200;
  let body = file;
  const headers: Record<string, string> = {};
  if (range && behaviour === 'refuse-range') {
    status = 416;
    body = Buffer.alloc(0);
    headers['content-range'] = `bytes */${file.length}`;
  } else if (range && behaviour === 'wrong-range') {
    status = 206;
    body = file.subarray(start - 1);
    headers['content-range'] = `bytes ${start - 1}-${file.length - 1}/${file.length}`;
  } else if (range && behaviour !== 'ignore-range') {
    status = 206;
    body = file.subarray(start);
    headers['content-range'] = `bytes ${start}-${file.length - 1}/${file.length}`;
  }
  headers['content-length'] = String(body.length);
  requests.push({ range: req.headers.range, status, bytes: body.length });
  res.writeHead(status, headers);
  res.end(body);
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'apertus-resumable-'));
  server = createServer(serve);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/file`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(root, { recursive: true, force: true });
});

let counter = 0;
async function setup(as: Behaviour, partial?: Buffer) {
  behaviour = as;
  requests.length = 0;
  const dir = join(root, `case-${++counter}`);
  await mkdir(dir, { recursive: true });
  const path = join(dir, 'file.bin');
  if (partial) await writeFile(`${path}${PARTIAL_SUFFIX}`, partial);
  return path;
}

function run(path: string, attempts = 2) {
  const moves: number[] = [];
  const promise = downloadResumable(
    { path, size: content.length, createHash: () => createHash('sha256'), expectedHex: sha256 },
    {
      what: 'test/file.bin',
      open: (start, signal) => fetch(url, { signal, headers: start > 0 ? { range: `bytes=${start}-` } : {} }),
      interrupted: (message, cause) =>
        new SourceUnavailableError('test-interrupted', message, 'Run again.', 0, cause),
      mismatch: (why) => new ApertusError('test-mismatch', `test/file.bin: ${why}`, { kind: 'operation' }),
      describeError: (error) => String(error),
    },
    { signal: new AbortController().signal, attempts, onBytes: (delta) => moves.push(delta) },
  );
  return { promise, moves };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

describe('downloadResumable', () => {
  it('resumes a partial file with Range and counts its bytes as done, not received', async () => {
    const path = await setup('range', content.subarray(0, 120_000));
    const { promise, moves } = run(path);
    expect(await promise).toEqual({ received: content.length - 120_000 });
    expect((await readFile(path)).equals(content)).toBe(true);
    expect(await exists(`${path}${PARTIAL_SUFFIX}`)).toBe(false);
    expect(requests).toEqual([{ range: 'bytes=120000-', status: 206, bytes: content.length - 120_000 }]);
    expect(moves[0]).toBe(120_000);
    expect(moves.reduce((sum, n) => sum + n, 0)).toBe(content.length);
  });

  it.each([
    ['ignore-range', [['bytes=120000-', 200]]],
    [
      'refuse-range',
      [
        ['bytes=120000-', 416],
        [undefined, 200],
      ],
    ],
    [
      'wrong-range',
      [
        ['bytes=120000-', 206],
        [undefined, 200],
      ],
    ],
  ] as const)('starts over from byte 0 when the server answers a Range with %s', async (as, expected) => {
    const path = await setup(as, content.subarray(0, 120_000));
    const { promise, moves } = run(path);
    expect(await promise).toEqual({ received: content.length });
    expect((await readFile(path)).equals(content)).toBe(true);
    expect(requests.map((r) => [r.range, r.status])).toEqual(expected);
    // Progress went back to zero before the fresh bytes came, and ends at the file size.
    expect(moves.reduce((sum, n) => sum + n, 0)).toBe(content.length);
    expect(moves).toContain(-120_000);
  });

  it('replaces a damaged partial file left by an earlier run once, instead of failing', async () => {
    const damaged = Buffer.from(content.subarray(0, 200_000));
    damaged[10] = (damaged[10] ?? 0) ^ 0xff;
    const path = await setup('range', damaged);
    const { promise } = run(path);
    expect(await promise).toEqual({ received: content.length - 200_000 + content.length });
    expect((await readFile(path)).equals(content)).toBe(true);
    expect(requests.map((r) => r.range)).toEqual(['bytes=200000-', undefined]);
  });

  it('tries afresh only once when the server itself sends damaged bytes, then refuses them', async () => {
    const path = await setup('corrupt', content.subarray(0, 100_000));
    const error = await run(path, 5).promise.catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'test-mismatch' });
    expect((error as Error).message).toContain('its content hashes to');
    expect(requests.map((r) => [r.range, r.status])).toEqual([
      ['bytes=100000-', 206],
      [undefined, 200],
    ]);
    expect(await exists(`${path}${PARTIAL_SUFFIX}`)).toBe(false);
    expect(await exists(path)).toBe(false);
  });

  it('refuses a size other than the expected one before writing, and keeps nothing', async () => {
    const path = await setup('wrong-size', content.subarray(0, 1000));
    const error = await run(path).promise.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ApertusError);
    expect(error).toMatchObject({ code: 'test-mismatch' });
    expect((error as Error).message).toContain(
      `announces ${content.length + 1} bytes instead of ${content.length}`,
    );
    expect(await exists(path)).toBe(false);
    expect(await exists(`${path}${PARTIAL_SUFFIX}`)).toBe(false);
    expect(requests).toHaveLength(1);
  });

  it('does not retry a local write failure: it is not the network', async () => {
    behaviour = 'range';
    requests.length = 0;
    const path = join(root, 'no-such-dir', 'file.bin');
    const error = await run(path, 5).promise.catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'ENOENT', syscall: 'open' });
    expect(requests).toHaveLength(1);
  });
});
