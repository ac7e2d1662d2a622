/**
 * Real inference through the llamacpp runtime as a host runs it: the tiny generated model,
 * a copy of exactly the files collectRuntimeFiles returns (so a missing file in the
 * closure fails here), server.mjs started under supervisor.mjs by the same sh command
 * lines the installer sends. Asserts shapes and counts; the weights are random.
 */
import { execFile } from 'node:child_process';
import { access, chmod, copyFile, mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LlamacppServiceSpec } from '../../src/core/layout/types.js';
import { PROJECT_ROOT } from '../../src/core/project-root.js';
import { renderLlamacppCommand } from '../../src/core/runtimes/llamacpp/command.js';
import { collectRuntimeFiles, RUNTIME_PATHS } from '../../src/core/runtimes/runtime-files.js';
import {
  startUnderSupervisor,
  stopUnderSupervisor,
  supervisorFiles,
} from '../../src/core/runtimes/supervisor.js';
import { generateTinyModel, TINY_MODEL } from '../../src/core/tiny-model/generate.js';

const execFileAsync = promisify(execFile);

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/**
 * A temp base no ancestor of which holds node_modules: Node would resolve packages
 * missing from the copy there and hide a gap in the closure.
 */
async function isolatedTempBase(): Promise<string> {
  for (const base of [tmpdir(), '/var/tmp', '/dev/shm']) {
    let dir = path.resolve(base);
    let clean = true;
    for (;;) {
      if (await exists(path.join(dir, 'node_modules'))) clean = false;
      const parent = path.dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
    if (clean && (await exists(base))) return base;
  }
  throw new Error(
    'no temp directory without a node_modules above it; the closure test would not be isolated',
  );
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Alive and not a zombie (the supervisor is not our child, so nobody here reaps it). */
async function isAlive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('llamacpp runtime server (real inference on the tiny model)', () => {
  let base: string;
  let runtimeDir: string;
  let port: number;
  let url: string;
  let files: { pidFile: string; logFile: string };
  let dirs: { runDir: string; logDir: string };

  const service = (): LlamacppServiceSpec => ({
    name: 'llm',
    runtime: 'llamacpp',
    model: { component: 'model', path: TINY_MODEL.fileName, id: TINY_MODEL.id },
    port,
    threads: 1,
    contextSize: 256,
    embeddings: true,
  });

  const childPid = async (): Promise<number | undefined> => {
    const log = await readFile(files.logFile, 'utf8');
    const started = [...log.matchAll(/\[supervisor llm\] started pid (\d+)/g)].at(-1);
    return started ? Number(started[1]) : undefined;
  };
  const healthy = async (): Promise<true | undefined> => {
    const response = await fetch(`${url}/health`);
    return response.status === 200 ? true : undefined;
  };
  const post = async (route: string, body: unknown): Promise<Response> =>
    fetch(`${url}${route}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    base = await mkdtemp(path.join(await isolatedTempBase(), 'apertus-runtime-e2e-'));
    runtimeDir = path.join(base, 'runtime');
    const modelDir = path.join(base, 'release', 'model');
    await mkdir(modelDir, { recursive: true });
    await writeFile(path.join(modelDir, TINY_MODEL.fileName), generateTinyModel());

    const collected = await collectRuntimeFiles(PROJECT_ROOT);
    for (const file of [
      ...collected.tree,
      { ...collected.node, source: collected.node.path, path: RUNTIME_PATHS.node },
    ]) {
      const to = path.join(runtimeDir, file.path);
      await mkdir(path.dirname(to), { recursive: true });
      await copyFile(file.source, to);
      await chmod(to, file.mode);
    }

    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    dirs = { runDir: path.join(base, 'run'), logDir: path.join(base, 'logs') };
    files = supervisorFiles('llm', dirs);
    const node = path.join(runtimeDir, RUNTIME_PATHS.node);
    const argv = renderLlamacppCommand(service(), {
      node,
      server: path.join(runtimeDir, RUNTIME_PATHS.server),
      modelPath: path.join(modelDir, TINY_MODEL.fileName),
    });
    await execFileAsync('sh', [
      '-c',
      startUnderSupervisor({
        name: 'llm',
        node,
        supervisor: path.join(runtimeDir, RUNTIME_PATHS.supervisor),
        argv,
        workingDirectory: base,
        ...dirs,
      }),
    ]);
    await waitFor('the server to report healthy', healthy);
  });

  afterAll(async () => {
    if (dirs)
      await execFileAsync('sh', ['-c', stopUnderSupervisor({ name: 'llm', runDir: dirs.runDir })]).catch(
        () => {},
      );
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('runs the copied node binary and server, not the checkout', async () => {
    const pid = await waitFor('the child pid', childPid);
    expect(await readlink(`/proc/${pid}/exe`)).toBe(path.join(runtimeDir, RUNTIME_PATHS.node));
    const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    expect(cmdline).toContain(path.join(runtimeDir, RUNTIME_PATHS.server));
    expect(cmdline.slice(cmdline.indexOf('--threads'), cmdline.indexOf('--threads') + 2)).toEqual([
      '--threads',
      '1',
    ]);
  });

  it('loads the packages of the RAG service (pg, unpdf, mammoth) from the copied closure: a PDF read, a DOCX refused by mammoth', async () => {
    const script = [
      "const pg = (await import('pg')).default;",
      "const readers = await import('./rag/document-readers.mjs');",
      "const pdf = Buffer.from(process.argv[1], 'base64');",
      'const read = await readers.readPdf(pdf);',
      "const docx = await readers.readDocx(Buffer.from('PK\\x03\\x04junk')).catch((e) => e.message);",
      'console.log(JSON.stringify({ pool: typeof pg.Pool, sections: read.sections, docx }));',
    ].join('\n');
    const { PDFDocument, StandardFonts } = await import('pdf-lib');
    const doc = await PDFDocument.create();
    doc
      .addPage()
      .drawText('closure check', { x: 40, y: 700, font: await doc.embedFont(StandardFonts.Helvetica) });
    const { stdout } = await execFileAsync(
      path.join(runtimeDir, RUNTIME_PATHS.node),
      ['--input-type=module', '-e', script, Buffer.from(await doc.save()).toString('base64')],
      { cwd: runtimeDir },
    );
    const result = JSON.parse(stdout);
    expect(result.pool).toBe('function');
    expect(result.sections).toEqual([{ page: 1, heading: null, text: 'closure check' }]);
    expect(result.docx).toMatch(/DOCX cannot be read/);
  });

  it('answers /health and lists the model', async () => {
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });

    const models = (await (await fetch(`${url}/v1/models`)).json()) as {
      object: string;
      data: Array<{ id: string }>;
    };
    expect(models.object).toBe('list');
    expect(models.data.map((m) => m.id)).toEqual([TINY_MODEL.id]);
  });

  it('completes a chat with usage counts', async () => {
    const response = await post('/v1/chat/completions', {
      model: TINY_MODEL.id,
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Say hello to the air gap.' },
      ],
      max_tokens: 8,
      temperature: 0.7,
      seed: 42,
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      object: string;
      choices: Array<{ message: { role: string; content: string }; finish_reason: string }>;
      usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
    };
    expect(body.object).toBe('chat.completion');
    expect(body.choices).toHaveLength(1);
    expect(body.choices[0]?.message.role).toBe('assistant');
    expect(typeof body.choices[0]?.message.content).toBe('string');
    expect(['stop', 'length']).toContain(body.choices[0]?.finish_reason);
    expect(body.usage.prompt_tokens).toBeGreaterThan(0);
    expect(body.usage.completion_tokens).toBeGreaterThanOrEqual(1);
    expect(body.usage.completion_tokens).toBeLessThanOrEqual(8);
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
  });

  it('samples reproducibly with a seed', async () => {
    const ask = async (seed: number) => {
      const response = await post('/v1/chat/completions', {
        messages: [{ role: 'user', content: 'Pick some tokens.' }],
        max_tokens: 12,
        temperature: 1,
        seed,
      });
      return ((await response.json()) as { choices: Array<{ message: { content: string } }> }).choices[0]
        ?.message.content;
    };
    expect(await ask(7)).toBe(await ask(7));
  });

  it('streams a chat as server-sent events ending in [DONE]', async () => {
    const response = await post('/v1/chat/completions', {
      messages: [{ role: 'user', content: 'Stream something.' }],
      max_tokens: 6,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const events = (await response.text())
      .split('\n\n')
      .filter((event) => event.startsWith('data: '))
      .map((event) => event.slice('data: '.length));
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map(
      (data) =>
        JSON.parse(data) as {
          object: string;
          choices: Array<{ delta: { content?: string }; finish_reason: string | null }>;
          usage?: { completion_tokens: number };
        },
    );
    expect(chunks.every((chunk) => chunk.object === 'chat.completion.chunk')).toBe(true);
    const deltas = chunks.filter((chunk) => chunk.choices[0]?.delta !== undefined);
    expect(deltas.length).toBeGreaterThanOrEqual(1);
    expect(chunks.some((chunk) => chunk.choices[0]?.finish_reason)).toBe(true);
    expect(chunks.at(-1)?.usage?.completion_tokens).toBeGreaterThanOrEqual(1);
  });

  it('embeds a string and an array of two with the model dimension', async () => {
    const one = (await (await post('/v1/embeddings', { input: 'air-gapped retrieval' })).json()) as {
      data: Array<{ index: number; embedding: number[] }>;
      usage: { prompt_tokens: number };
    };
    expect(one.data).toHaveLength(1);
    expect(one.data[0]?.embedding).toHaveLength(TINY_MODEL.embeddingLength);
    expect(one.data[0]?.embedding.every(Number.isFinite)).toBe(true);
    expect(one.usage.prompt_tokens).toBeGreaterThan(0);

    const two = (await (await post('/v1/embeddings', { input: ['first', 'second one'] })).json()) as {
      data: Array<{ index: number; embedding: number[] }>;
    };
    expect(two.data.map((d) => d.index)).toEqual([0, 1]);
    expect(two.data.map((d) => d.embedding.length)).toEqual([
      TINY_MODEL.embeddingLength,
      TINY_MODEL.embeddingLength,
    ]);
  });

  it('serves concurrent requests one after another and answers bad ones with JSON errors', async () => {
    const statuses = await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        post('/v1/chat/completions', {
          messages: [{ role: 'user', content: `n${i}` }],
          max_tokens: 4,
          stream: i % 2 === 0,
        }).then(async (r) => {
          await r.text();
          return r.status;
        }),
      ),
    );
    expect(statuses).toEqual([200, 200, 200, 200]);

    const notFound = await fetch(`${url}/v1/nothing`);
    expect(notFound.status).toBe(404);
    expect(((await notFound.json()) as { error: { message: string } }).error.message).toContain(
      '/v1/nothing',
    );
    const badJson = await fetch(`${url}/v1/chat/completions`, { method: 'POST', body: '{not json' });
    expect(badJson.status).toBe(400);
    const noMessages = await post('/v1/chat/completions', { messages: [] });
    expect(noMessages.status).toBe(400);
  });

  it('restarts the server when it dies', async () => {
    const before = await waitFor('the child pid', childPid);
    process.kill(before, 'SIGKILL');
    const after = await waitFor('a new child', async () => {
      const pid = await childPid();
      return pid !== undefined && pid !== before ? pid : undefined;
    });
    expect(after).not.toBe(before);
    await waitFor('the restarted server to report healthy', healthy);
    expect(await readFile(files.logFile, 'utf8')).toMatch(/killed by SIGKILL.*restarting in 0\.5 s/);
  });

  it('stops the server and removes the pid file on SIGTERM to the supervisor', async () => {
    const supervisorPid = Number((await readFile(files.pidFile, 'utf8')).trim());
    const child = await waitFor('the child pid', childPid);
    process.kill(supervisorPid, 'SIGTERM');
    await waitFor(
      'the supervisor to exit',
      async () => ((await isAlive(supervisorPid)) ? undefined : true),
      15_000,
    );
    expect(await isAlive(child)).toBe(false);
    expect(await exists(files.pidFile)).toBe(false);
    await expect(fetch(`${url}/health`)).rejects.toThrow();
  });
});
