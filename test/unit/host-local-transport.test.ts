import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDemoHost, createDemoHost } from '../../src/core/demo-host/demo-host.js';
import { ApertusError } from '../../src/core/errors.js';
import { httpRequest, httpRequestStream } from '../../src/core/host/http-over-transport.js';
import { createLocalTransport } from '../../src/core/host/local-transport.js';
import { shellQuote } from '../../src/core/host/shell-quote.js';

let dir: string;
let server: Server;
let port: number;
const transport = createLocalTransport();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'apertus-local-transport-'));
  server = createServer((req, res) => {
    if (req.url === '/slow') return; // never answers: for the timeout
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, url: req.url, body }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

describe('local transport', () => {
  it('returns the same execa-shaped results as the SSH transport', async () => {
    expect(await transport.exec('echo out; echo err >&2')).toEqual({
      command: 'echo out; echo err >&2',
      exitCode: 0,
      stdout: 'out',
      stderr: 'err',
      failed: false,
    });
    const command = shellQuote(['sh', '-c', 'echo bad >&2; exit 3']);
    expect(await transport.exec(command, { reject: false })).toMatchObject({
      exitCode: 3,
      failed: true,
      stderr: 'bad',
    });
    const error = await transport.exec(command).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ApertusError);
    expect(error).toMatchObject({ code: 'remote-command-failed', kind: 'operation' });
    expect((await transport.exec('kill -9 $$', { reject: false })).exitCode).toBe(137);
  });

  it('feeds stdin and runs in the given directory', async () => {
    expect((await transport.exec('cat', { stdin: 'abc' })).stdout).toBe('abc');
    expect(
      (await transport.exec('cat', { stdin: Readable.from([Buffer.from('x'), Buffer.from('y')]) })).stdout,
    ).toBe('xy');
    expect((await transport.exec('cat')).stdout).toBe('');
    expect((await createLocalTransport({ cwd: dir }).exec('pwd')).stdout).toBe(dir);
  });

  it('uploads with byte progress and checks the size', async () => {
    const target = join(dir, 'file');
    const seen: number[] = [];
    await transport.upload(Readable.from([Buffer.from('hello '), Buffer.from('world')]), target, {
      size: 11,
      onBytes: (done) => seen.push(done),
    });
    expect(await readFile(target, 'utf8')).toBe('hello world');
    expect(seen).toEqual([6, 11]);
    await expect(
      transport.upload(Readable.from([Buffer.from('x')]), target, { size: 2 }),
    ).rejects.toMatchObject({
      code: 'upload-size-mismatch',
    });
    await expect(
      transport.upload(Readable.from([Buffer.from('x')]), join(dir, 'missing', 'f'), { size: 1 }),
    ).rejects.toMatchObject({ code: 'upload-failed' });
  });

  it('aborts a command', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    await expect(transport.exec('sleep 30', { signal: controller.signal })).rejects.toThrow(/abort/i);
  });
});

describe('HTTP over a transport', () => {
  it('sends requests and reads responses', async () => {
    const got = await httpRequest(transport, { port, path: '/health', timeoutMs: 2_000 });
    expect(got.status).toBe(200);
    expect(JSON.parse(got.body)).toEqual({ method: 'GET', url: '/health', body: '' });
    const posted = await httpRequest(transport, {
      port,
      path: '/v1/chat/completions',
      json: { a: 1 },
      timeoutMs: 2_000,
    });
    expect(JSON.parse(posted.body)).toEqual({ method: 'POST', url: '/v1/chat/completions', body: '{"a":1}' });
    const streamed = await httpRequestStream(transport, { port, path: '/s', timeoutMs: 2_000 });
    let text = '';
    for await (const chunk of streamed.body) text += String(chunk);
    expect(JSON.parse(text).url).toBe('/s');
  });

  it('times out with a clear error', async () => {
    const started = Date.now();
    await expect(httpRequest(transport, { port, path: '/slow', timeoutMs: 300 })).rejects.toMatchObject({
      code: 'http-timeout',
    });
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('says when nothing listens', async () => {
    await expect(httpRequest(transport, { port: 1, path: '/', timeoutMs: 1_000 })).rejects.toMatchObject({
      code: 'host-port-unreachable',
    });
  });
});

describe("demo host in 'local' mode", () => {
  it('runs the local transport in its root and removes it on teardown', async () => {
    const host = await createDemoHost({ workDir: join(dir, 'demo'), mode: 'local' });
    expect(host.mode).toBe('local');
    expect(host.address).toBeUndefined();
    expect(host.reason).toContain('local transport');
    const local = await connectDemoHost(host);
    expect((await local.exec('pwd')).stdout).toBe(host.root);
    await host.teardown();
    await host.teardown();
    await expect(readFile(join(host.root, 'x'))).rejects.toThrow();
    expect((await local.exec('true', { reject: false })).exitCode).not.toBe(0);
  });
});
