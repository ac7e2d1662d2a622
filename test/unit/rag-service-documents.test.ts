/**
 * The real RAG service (templates/rag/server.mjs) in front of the real llamacpp runtime on
 * the generated tiny model, keeping its vectors in real pgvector (PGlite over the wire
 * protocol, test/helpers/pglite-server.ts), all on loopback ports chosen free: a PDF and a
 * DOCX made by real writers are ingested through POST /v1/documents, retrieval and chat
 * name the page and the section in their sources, the refusals come back as 422 with the
 * reason, the connection URL comes from the environment and is never printed, and the
 * collection is locked in the database. The weights are random: answers are never
 * compared; retrieval is (a chunk's own text embeds to its own vector).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../src/core/project-root.js';
import { generateTinyModel, TINY_MODEL } from '../../src/core/tiny-model/generate.js';
import { readPdf } from '../../templates/rag/document-readers.mjs';
import { chunkSections } from '../../templates/rag/documents.mjs';
import { writeDocx, writeEncryptedPdf, writeImageOnlyPdf, writeTextPdf } from '../helpers/office-files.js';
import { PGLITE_PASSWORD, type PgliteServer, startPgliteServer } from '../helpers/pglite-server.js';
import { freePort } from '../helpers/registry.js';
import { runCli } from '../helpers/run-cli.js';

const RUNTIME_SERVER = path.join(PROJECT_ROOT, 'templates', 'runtime', 'server.mjs');
const RAG_SERVER = path.join(PROJECT_ROOT, 'templates', 'rag', 'server.mjs');
const CHUNK = { size: 300, overlap: 40 };

async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  child: { output: () => string },
  timeoutMs = 120_000,
) {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${child.output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const children = new Set<ChildProcess>();
function start(script: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  children.add(child);
  let output = '';
  child.stdout?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    output += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

describe('RAG service: PDF and DOCX into pgvector, sources that name the page', () => {
  let base: string;
  let pg: PgliteServer;
  let ragPort: number;
  let runtimePort: number;
  let rag: ReturnType<typeof start>;
  const pages = [
    ['Ward 4 protocol.', 'Visiting hours on ward four are from ten to twelve.'],
    ['Dosage: paracetamol one gram every six hours,', 'never more than four grams in a day.'],
    ['The night nurse holds the key to the emergency cabinet.'],
  ];
  let pdf: Buffer;

  const call = async (method: string, route: string, body?: unknown) => {
    const response = await fetch(`http://127.0.0.1:${ragPort}${route}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return {
      status: response.status,
      json: (await response.json()) as Record<string, unknown> & { data?: Array<Record<string, unknown>> },
    };
  };

  beforeAll(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'apertus-rag-documents-'));
    const modelPath = path.join(base, TINY_MODEL.fileName);
    await writeFile(modelPath, generateTinyModel());
    runtimePort = await freePort();
    ragPort = await freePort();
    pg = await startPgliteServer();
    const runtime = start(RUNTIME_SERVER, [
      ...['--model', modelPath, '--model-id', TINY_MODEL.id, '--threads', '1', '--port', String(runtimePort)],
      ...['--embeddings', '--context-size', '2048'],
    ]);
    await waitFor(
      'the runtime',
      async () => (await fetch(`http://127.0.0.1:${runtimePort}/health`)).status === 200,
      runtime,
    );
    const dataDir = path.join(base, 'data', 'rag');
    rag = start(
      RAG_SERVER,
      [
        ...[
          '--port',
          String(ragPort),
          '--data-dir',
          dataDir,
          '--runtime-url',
          `http://127.0.0.1:${runtimePort}`,
        ],
        ...[
          '--embedding-model',
          TINY_MODEL.id,
          '--chat-model',
          TINY_MODEL.id,
          '--dimension',
          String(TINY_MODEL.embeddingLength),
        ],
        ...['--chunk-size', String(CHUNK.size), '--chunk-overlap', String(CHUNK.overlap), '--top-k', '3'],
        ...['--store', 'pgvector', '--pgvector-collection', 'wards'],
      ],
      { APERTUS_PGVECTOR_URL: pg.url },
    );
    await waitFor(
      'the RAG service',
      async () => (await fetch(`http://127.0.0.1:${ragPort}/health`)).status === 200,
      rag,
    );
    pdf = await writeTextPdf(pages, 'Ward protocol');
  });

  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await pg?.stop();
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('ingests a PDF and a DOCX into pgvector; queries and chat sources name the page and the section', async () => {
    const ingested = await call('POST', '/v1/documents', {
      id: 'ward-protocol',
      source: 'protocols/ward-4.pdf',
      content_base64: pdf.toString('base64'),
    });
    expect(ingested.status).toBe(201);
    expect(ingested.json).toMatchObject({ format: 'pdf', title: 'Ward protocol', chunks: 3 });
    const docx = writeDocx([
      { heading: 1, text: 'Parking' },
      { text: 'Visitors park in the north car park; the first hour is free.' },
    ]);
    const docxIngested = await call('POST', '/v1/documents', {
      source: 'guide.docx',
      content_base64: docx.toString('base64'),
    });
    expect(docxIngested.status).toBe(201);
    expect(docxIngested.json).toMatchObject({ format: 'docx', title: 'Parking', chunks: 1 });

    // A chunk's own text embeds to its own vector, so asking it retrieves it first.
    const chunks = chunkSections((await readPdf(pdf)).sections, CHUNK);
    const dosage = chunks[1] as string;
    const query = await call('POST', '/v1/query', { query: dosage, top_k: 2 });
    expect(query.status).toBe(200);
    expect(query.json.data?.[0]).toMatchObject({
      document: 'ward-protocol',
      chunk: 1,
      page: 2,
      section: null,
    });

    const chat = await call('POST', '/v1/chat/completions', {
      model: TINY_MODEL.id,
      messages: [{ role: 'user', content: dosage }],
      max_tokens: 4,
    });
    expect(chat.status).toBe(200);
    const sources = chat.json.sources as Array<Record<string, unknown>>;
    expect(sources[0]).toMatchObject({
      index: 1,
      document: 'ward-protocol',
      chunk: 1,
      page: 2,
      source: 'protocols/ward-4.pdf',
    });
    const parking = await call('POST', '/v1/query', {
      query: '[section "Parking"]\nVisitors park in the north car park; the first hour is free.',
      top_k: 1,
    });
    expect(parking.json.data?.[0]).toMatchObject({ page: null, section: 'Parking' });

    // The chunks are in PostgreSQL, in the collection's own table.
    const { rows } = await pg.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM apertus_collections WHERE name = 'wards' AND embedding_model = $1",
      [TINY_MODEL.id],
    );
    expect(rows[0]?.n).toBe(1);
    expect(rag.output()).toContain('pgvector store');
    expect(rag.output()).not.toContain(PGLITE_PASSWORD);
  });

  it('answers 422 with the reason for an encrypted PDF, a scanned one and a broken DOCX; 400 for bad base64', async () => {
    const encrypted = await call('POST', '/v1/documents', {
      format: 'pdf',
      content_base64: (await writeEncryptedPdf()).toString('base64'),
    });
    expect(encrypted.status).toBe(422);
    expect(JSON.stringify(encrypted.json)).toMatch(/needs a password/);
    const scanned = await call('POST', '/v1/documents', {
      source: 'scan.pdf',
      content_base64: (await writeImageOnlyPdf(1)).toString('base64'),
    });
    expect(scanned.status).toBe(422);
    expect(JSON.stringify(scanned.json)).toMatch(/no text layer/);
    const broken = await call('POST', '/v1/documents', {
      format: 'docx',
      content_base64: Buffer.from('PK\x03\x04junk').toString('base64'),
    });
    expect(broken.status).toBe(422);
    expect(
      (await call('POST', '/v1/documents', { format: 'pdf', content_base64: 'not base64!' })).status,
    ).toBe(400);
    expect((await call('POST', '/v1/documents', { format: 'text', content_base64: 'aGk=' })).status).toBe(
      400,
    );
    expect((await call('POST', '/v1/documents', { format: 'pdf', text: 'hello' })).status).toBe(400);
    const listed = await call('GET', '/v1/documents');
    expect(listed.json.data?.map((d) => d.id).sort()).toEqual([
      expect.stringMatching(/^doc-/),
      'ward-protocol',
    ]);
  });

  it('apertus rag ingest --local: a directory walked, then resumed (unchanged files skipped), a changed one replaced, a refusal reported', async () => {
    // A host root whose current release runs this RAG service, as install leaves it.
    const root = path.join(base, 'root');
    const releaseDir = path.join(root, 'releases', 'demo', '0.1.0');
    await mkdir(releaseDir, { recursive: true });
    const service = {
      name: 'rag',
      runtime: 'rag',
      port: ragPort,
      runtimeUrl: `http://127.0.0.1:${runtimePort}`,
      embeddingModel: TINY_MODEL.id,
      dimension: TINY_MODEL.embeddingLength,
      chatModel: TINY_MODEL.id,
    };
    const record = {
      name: 'demo',
      version: '0.1.0',
      manifestDigest: `sha256:${'0'.repeat(64)}`,
      stagedAt: new Date().toISOString(),
      services: [service],
    };
    await writeFile(path.join(releaseDir, 'release.json'), JSON.stringify(record));
    await symlink('releases/demo/0.1.0', path.join(root, 'current'));
    const docs = path.join(base, 'corpus');
    await mkdir(path.join(docs, 'wards'), { recursive: true });
    await writeFile(path.join(docs, 'wards', 'protocol.pdf'), pdf);
    await writeFile(
      path.join(docs, 'guide.docx'),
      writeDocx([{ heading: 1, text: 'Canteen' }, { text: 'The canteen opens at seven.' }]),
    );
    await writeFile(path.join(docs, 'notes.md'), '# Notes\n\nThe lifts are serviced on Mondays.');
    await writeFile(path.join(docs, 'ignored.bin'), 'not a document');

    const first = await runCli(['rag', 'ingest', '--local', '--root', root, docs, '--json']);
    expect(first.exitCode).toBe(0);
    const result = JSON.parse(first.stdout);
    expect(result.summary).toEqual({ ingested: 3, replaced: 0, skipped: 0, failed: 0 });
    expect(result.documents.map((d: { id: string; status: string }) => [d.id, d.status])).toEqual([
      ['guide.docx', 'ingested'],
      ['notes.md', 'ingested'],
      ['wards:protocol.pdf', 'ingested'],
    ]);
    const stored = await call('GET', '/v1/documents/wards%3Aprotocol.pdf');
    expect(stored.json).toMatchObject({ format: 'pdf', source: 'wards/protocol.pdf', chunks: 3 });

    await writeFile(path.join(docs, 'notes.md'), '# Notes\n\nThe lifts are serviced on Tuesdays.');
    await writeFile(path.join(docs, 'scan.pdf'), await writeImageOnlyPdf(1));
    const again = await runCli(['rag', 'ingest', '--local', '--root', root, '--collection', 'rag', docs]);
    expect(again.exitCode).toBe(1);
    expect(again.stdout).toContain('4 documents for RAG service rag');
    expect(again.stdout).toContain('0 ingested, 1 replaced, 2 skipped (unchanged), 1 failed');
    expect(again.stdout).toMatch(/FAILED scan\.pdf: HTTP 422: .*no text layer/);
    expect(again.stderr).toMatch(/1\/4 guide\.docx: skipped/);

    const missing = await runCli([
      'rag',
      'ingest',
      '--local',
      '--root',
      root,
      path.join(docs, 'nope'),
      '--json',
    ]);
    expect(missing.exitCode).toBe(2);
    expect(JSON.parse(missing.stdout).error.code).toBe('rag-ingest-path-missing');

    const otherCollection = await runCli([
      'rag',
      'ingest',
      '--local',
      '--root',
      root,
      '--collection',
      'wards',
      docs,
    ]);
    expect(otherCollection.exitCode).toBe(2);
    expect(otherCollection.stderr).toContain('has no RAG service "wards" (RAG services: rag)');
    // A hostile name is only compared with the release's service names, never run or joined into a path.
    const marker = path.join(base, 'pwned');
    for (const hostile of [`$(touch ${marker})`, '../rag', 'rag\nrag']) {
      const run = await runCli([
        'rag',
        'ingest',
        '--local',
        '--root',
        root,
        '--collection',
        hostile,
        docs,
        '--json',
      ]);
      expect(run.exitCode).toBe(2);
      expect(JSON.parse(run.stdout).error.code).toBe('rag-ingest-no-service');
    }
    await expect(stat(marker)).rejects.toThrow();
  });

  it('refuses a pgvector URL file others may read, naming it', async () => {
    const dataDir = path.join(base, 'other');
    const urlFile = path.join(base, 'pgvector.url');
    await writeFile(urlFile, `${pg.url}\n`);
    await chmod(urlFile, 0o644);
    const port = await freePort();
    const refused = start(RAG_SERVER, [
      ...[
        '--port',
        String(port),
        '--data-dir',
        dataDir,
        '--embedding-model',
        'm',
        '--chat-model',
        'm',
        '--dimension',
        '8',
      ],
      ...['--store', 'pgvector', '--pgvector-url-file', urlFile],
    ]);
    expect(await refused.exited).toBe(1);
    expect(refused.output()).toMatch(/pgvector\.url may be read by every user/);
    expect(refused.output()).not.toContain(PGLITE_PASSWORD);
  });
});
