/**
 * The real services a gateway test runs: the runtime server on the tiny model, the RAG
 * service, and the gateway itself (templates/), each a child process on loopback, plus a
 * fetch that trusts a test CA (the SDK takes a fetch; Node's own cannot be given a CA).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import path from 'node:path';
import { Readable } from 'node:stream';
import { PROJECT_ROOT } from '../../src/core/project-root.js';
import { TINY_MODEL } from '../../src/core/tiny-model/generate.js';
import { createCa, issueCertificate } from '../../src/core/tls/openssl-ca.js';
import { keyDigest } from '../../templates/gateway/api-keys.mjs';
import { freePort } from './registry.js';

export { freePort };

export const GATEWAY_SERVER = path.join(PROJECT_ROOT, 'templates', 'gateway', 'server.mjs');
const RUNTIME_SERVER = path.join(PROJECT_ROOT, 'templates', 'runtime', 'server.mjs');
const RAG_SERVER = path.join(PROJECT_ROOT, 'templates', 'rag', 'server.mjs');

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface Started {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  stop: () => Promise<void>;
}

export function startNode(script: string, args: string[]): Started {
  const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    output: () => output,
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

export async function startRuntime(port: number, modelPath: string): Promise<Started> {
  const runtime = startNode(RUNTIME_SERVER, [
    ...['--model', modelPath, '--model-id', TINY_MODEL.id, '--threads', '1'],
    ...['--port', String(port), '--embeddings', '--context-size', '2048'],
  ]);
  await waitFor('the runtime to load', async () =>
    (await fetch(`http://127.0.0.1:${port}/health`)).status === 200 ? true : undefined,
  );
  return runtime;
}

export async function startRag(
  port: number,
  runtimePort: number,
  dataDir: string,
  extra: string[] = [],
): Promise<Started> {
  const rag = startNode(RAG_SERVER, [
    ...['--port', String(port), '--data-dir', dataDir, '--audit-log', path.join(dataDir, 'audit.log')],
    ...['--runtime-url', `http://127.0.0.1:${runtimePort}`, '--embedding-model', TINY_MODEL.id],
    ...['--chat-model', TINY_MODEL.id, '--dimension', String(TINY_MODEL.embeddingLength)],
    ...['--chunk-size', '300', '--chunk-overlap', '50', '--max-context-chars', '1200'],
    ...extra,
  ]);
  await waitFor('the RAG service', async () =>
    (await fetch(`http://127.0.0.1:${port}/health`)).status === 200 ? true : undefined,
  );
  return rag;
}

export interface Gateway extends Started {
  /** https://127.0.0.1:PORT (or http with --insecure-http). */
  url: string;
  metricsUrl: string;
}

/** Starts the gateway on port 0 and reads the bound ports from its `listening` line. */
export async function startGateway(args: string[]): Promise<Gateway> {
  const gateway = startNode(GATEWAY_SERVER, ['--listen', '127.0.0.1:0', '--metrics-port', '0', ...args]);
  const line = await waitFor('the gateway to listen', async () => {
    if (gateway.child.exitCode !== null) throw new Error(`gateway exited: ${gateway.output()}`);
    return /listening (https?)=(\S+) metrics=(\S+)/.exec(gateway.output()) ?? undefined;
  });
  return { ...gateway, url: `${line[1]}://${line[2]}`, metricsUrl: `http://${line[3]}/metrics` };
}

export interface TestKey {
  name: string;
  key: string;
  scopes: string[];
  revoked?: string;
}

export function newKey(name: string, scopes: string[]): TestKey {
  return { name, key: `apk-${randomBytes(32).toString('base64url')}`, scopes };
}

/** Writes the key file as `apertus keys api` does: hashes only, renamed into place. */
export async function writeKeyFile(file: string, keys: TestKey[]): Promise<void> {
  const doc = {
    format: 'apertus-api-keys',
    formatVersion: 1,
    keys: keys.map((k) => ({
      name: k.name,
      sha256: keyDigest(k.key),
      scopes: k.scopes,
      created: '2026-01-01T00:00:00.000Z',
      ...(k.revoked ? { revoked: k.revoked } : {}),
    })),
  };
  await writeFile(`${file}.tmp`, JSON.stringify(doc), { mode: 0o600 });
  const { rename } = await import('node:fs/promises');
  await rename(`${file}.tmp`, file);
}

/** A CA and a certificate for 127.0.0.1 and localhost, as `apertus tls ca|cert` make them. */
export async function makeTestCertificates(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const ca = await createCa({ dir, name: 'apertus test CA', days: 2 });
  const issued = await issueCertificate({
    caDir: dir,
    names: ['127.0.0.1', 'localhost'],
    out: path.join(dir, 'host'),
    days: 2,
  });
  return { ca: ca.cert, cert: issued.cert, key: issued.key };
}

/** A fetch over node:https that trusts `ca` (and only it), streaming the response body. */
export function fetchTrusting(ca: string | Buffer): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    const headers = new Headers(init?.headers);
    const body =
      init?.body === undefined || init.body === null
        ? undefined
        : Buffer.from(
            typeof init.body === 'string'
              ? init.body
              : new Uint8Array(await new Response(init.body).arrayBuffer()),
          );
    return await new Promise<Response>((resolve, reject) => {
      const req = httpsRequest(
        url,
        { method: init?.method ?? 'GET', headers: Object.fromEntries(headers), ca },
        (res) => {
          const responseHeaders = new Headers();
          for (const [k, v] of Object.entries(res.headers))
            if (v !== undefined) responseHeaders.set(k, Array.isArray(v) ? v.join(', ') : v);
          resolve(
            new Response(Readable.toWeb(res) as ReadableStream, {
              status: res.statusCode ?? 500,
              headers: responseHeaders,
            }),
          );
        },
      );
      req.once('error', reject);
      init?.signal?.addEventListener('abort', () => req.destroy(new Error('aborted')));
      req.end(body);
    });
  }) as typeof fetch;
}
