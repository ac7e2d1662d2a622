/**
 * `apertus rag ingest`: send local documents (text, Markdown, HTML, PDF, DOCX; files or
 * directories walked) to the RAG service of a host's current release, through the
 * transport (HTTP over the SSH channel to its loopback port), one request per document.
 *
 * Resumable: the service lists each stored document's sha256, and a file whose bytes hash
 * to the one stored under its id is skipped, so a run cut short is simply run again. A
 * document's id is its path relative to the directory named (or its file name), made safe
 * for the service's id rule. Changes nothing on the host but the collection: the RAG
 * service writes one audit record per request (caller `apertus-rag-ingest`), and the
 * host session is read-only (no lock: the service serialises its own writes).
 */
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { ApertusError, isApertusError } from '../errors.js';
import { httpRequest } from '../host/http-over-transport.js';
import { noProgress, type RunOptions } from '../progress.js';
import { DOCUMENT_FORMATS } from '../runtimes/rag/document-formats.js';
import { RAG_CALLER_HEADER } from '../runtimes/rag/rag-service.js';
import type { InstallTarget } from '../target/connect.js';
import { DEFAULT_HOST_ROOT, parseHostRoot } from '../target/layout.js';
import { readRelease } from '../target/releases.js';
import { withHostSession } from '../target/session.js';

/** Extensions ingested when walking a directory, and the format each is sent as. */
const FORMATS = DOCUMENT_FORMATS;
const BINARY = new Set(['pdf', 'docx']);
/** The service's body limit is 16 MiB; base64 adds a third. */
const MAX_FILE_BYTES = 12 * 1024 * 1024;
/** Embedding a long PDF on a CPU runtime takes minutes. */
const REQUEST_TIMEOUT_MS = 15 * 60_000;
const CALLER = 'apertus-rag-ingest';

export interface RagIngestOptions extends RunOptions {
  target: InstallTarget;
  root?: string | undefined;
  /** Files and directories on this machine. */
  paths: string[];
  /** The RAG service of the release; default: its only one. */
  service?: string | undefined;
}

export interface IngestFile {
  file: string;
  /** Relative to the directory named, or the file name: the document's source. */
  source: string;
  id: string;
  format: string;
}

export interface RagIngestDocument extends IngestFile {
  status: 'ingested' | 'replaced' | 'skipped' | 'failed';
  sha256: string | null;
  chunks: number | null;
  detail: string | null;
}

/** What `apertus rag ingest --json` prints. Field names are a contract. */
export interface RagIngestResult {
  ok: boolean;
  host: string;
  service: string;
  port: number;
  documents: RagIngestDocument[];
  summary: { ingested: number; replaced: number; skipped: number; failed: number };
}

/** A relative path as a document id the service accepts: '/' becomes ':', other characters '-'. */
export function documentIdFor(source: string): string {
  let id = source
    .split(path.sep)
    .join('/')
    .replace(/\//g, ':')
    .replace(/[^A-Za-z0-9._:@+-]/g, '-');
  if (!/^[A-Za-z0-9]/.test(id)) id = `d${id}`;
  if (id.length > 200) {
    const digest = createHash('sha256').update(source).digest('hex').slice(0, 16);
    id = `${id.slice(0, 183)}-${digest}`;
  }
  return id;
}

/** The files to send, sorted; refuses (exit 2) a path that is missing, a link, or a file of no known format. */
export async function collectIngestFiles(paths: string[]): Promise<IngestFile[]> {
  const files: IngestFile[] = [];
  const add = (file: string, source: string) => {
    const format = FORMATS[path.extname(file).toLowerCase()];
    if (format) files.push({ file, source, id: documentIdFor(source), format });
    return format !== undefined;
  };
  const walk = async (dir: string, base: string): Promise<void> => {
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const full = path.join(dir, entry.name);
      // Links are not followed: a link could lead out of the tree the operator named.
      if (entry.isDirectory()) await walk(full, base);
      else if (entry.isFile()) add(full, path.relative(base, full));
    }
  };
  for (const given of paths) {
    const info = await lstat(given).catch(() => null);
    if (info === null) {
      throw new ApertusError('rag-ingest-path-missing', `${given} does not exist.`, {
        hint: 'Name files or directories of documents on this machine.',
      });
    }
    if (info.isSymbolicLink()) {
      throw new ApertusError(
        'rag-ingest-path-link',
        `${given} is a symbolic link; apertus does not follow links.`,
        {
          hint: 'Name the file or directory it points to.',
        },
      );
    }
    if (info.isDirectory()) await walk(path.resolve(given), path.resolve(given));
    else if (!add(path.resolve(given), path.basename(given))) {
      throw new ApertusError('rag-ingest-format', `${given} is not a document apertus can ingest.`, {
        hint: `Documents end in ${Object.keys(FORMATS).join(', ')}.`,
      });
    }
  }
  const seen = new Map<string, string>();
  for (const f of files) {
    const other = seen.get(f.id);
    if (other !== undefined) {
      throw new ApertusError(
        'rag-ingest-duplicate-id',
        `${other} and ${f.file} would both be document "${f.id}".`,
        {
          hint: 'Rename one of them, or ingest them in separate runs from different directories.',
        },
      );
    }
    seen.set(f.id, f.file);
  }
  return files;
}

export async function ragIngest(options: RagIngestOptions): Promise<RagIngestResult> {
  const onProgress = options.onProgress ?? noProgress;
  const files = await collectIngestFiles(options.paths);
  const root = parseHostRoot(options.root ?? DEFAULT_HOST_ROOT);
  return withHostSession(
    {
      target: options.target,
      root,
      command: 'rag ingest',
      lock: false,
      probe: { system: false, sizes: false },
      signal: options.signal,
      onProgress,
    },
    async (session) => {
      const { transport, layout, probe, signal } = session;
      const link = probe.root.current;
      const release = link ? await readRelease(transport, layout, link) : null;
      if (!release) {
        throw new ApertusError(
          'rag-ingest-no-release',
          `Nothing is installed under ${root} on ${transport.description}.`,
          {
            hint: 'Install a bundle with a RAG service first (apertus install).',
          },
        );
      }
      const rags = release.services.filter((s) => s.runtime === 'rag');
      const rag = options.service
        ? rags.find((s) => s.name === options.service)
        : rags.length === 1
          ? rags[0]
          : undefined;
      if (!rag) {
        throw new ApertusError(
          'rag-ingest-no-service',
          options.service
            ? `The current release on ${transport.description} has no RAG service "${options.service}" (RAG services: ${rags.map((s) => s.name).join(', ') || 'none'}).`
            : `The current release on ${transport.description} has ${rags.length === 0 ? 'no RAG service' : `${rags.length} RAG services (${rags.map((s) => s.name).join(', ')})`}.`,
          {
            hint:
              rags.length > 1
                ? 'Name one with --collection.'
                : 'Install a bundle with a service of runtime: rag.',
          },
        );
      }
      const call = async (method: string, route: string, json?: unknown) => {
        const response = await httpRequest(transport, {
          port: rag.port,
          method,
          path: route,
          json,
          headers: { [RAG_CALLER_HEADER]: CALLER },
          timeoutMs: REQUEST_TIMEOUT_MS,
          signal,
        });
        let body: Record<string, unknown> | null = null;
        try {
          body = JSON.parse(response.body) as Record<string, unknown>;
        } catch {}
        return { status: response.status, body, text: response.body };
      };
      const listed = await call('GET', '/v1/documents');
      if (listed.status !== 200 || !Array.isArray(listed.body?.data)) {
        throw new ApertusError(
          'rag-ingest-service-down',
          `The RAG service ${rag.name} on ${transport.description} answered HTTP ${listed.status} to GET /v1/documents: ${listed.text.slice(0, 300)}`,
          { kind: 'operation', hint: `Check it with apertus status; nothing was sent.` },
        );
      }
      const stored = new Map<string, string | null>();
      for (const d of listed.body.data as Array<{ id?: unknown; sha256?: unknown }>)
        if (typeof d.id === 'string') stored.set(d.id, typeof d.sha256 === 'string' ? d.sha256 : null);

      const documents: RagIngestDocument[] = [];
      for (const [i, f] of files.entries()) {
        const step = `rag.ingest`;
        const where = `${i + 1}/${files.length} ${f.source}`;
        const done = (status: RagIngestDocument['status'], extra: Partial<RagIngestDocument>) => {
          const document: RagIngestDocument = {
            ...f,
            status,
            sha256: null,
            chunks: null,
            detail: null,
            ...extra,
          };
          documents.push(document);
          onProgress({
            step,
            status: status === 'failed' ? 'fail' : status === 'skipped' ? 'skip' : 'ok',
            detail: `${where}: ${status}${document.detail ? ` (${document.detail})` : ''}`,
          });
        };
        const bytes = await readFile(f.file);
        const sha256 = createHash('sha256').update(bytes).digest('hex');
        if (stored.get(f.id) === sha256) {
          done('skipped', { sha256, detail: 'already ingested with the same sha256' });
          continue;
        }
        if (bytes.length > MAX_FILE_BYTES) {
          done('failed', {
            sha256,
            detail: `${bytes.length} bytes; the service takes at most ${MAX_FILE_BYTES}`,
          });
          continue;
        }
        onProgress({ step, status: 'start', detail: where });
        const body = {
          id: f.id,
          source: f.source,
          format: f.format,
          ...(BINARY.has(f.format)
            ? { content_base64: bytes.toString('base64') }
            : { text: bytes.toString('utf8') }),
        };
        try {
          const answer = await call('POST', '/v1/documents', body);
          if (answer.status === 200 || answer.status === 201) {
            stored.set(f.id, sha256);
            done(answer.status === 200 ? 'replaced' : 'ingested', {
              sha256,
              chunks: typeof answer.body?.chunks === 'number' ? answer.body.chunks : null,
            });
          } else {
            const error = answer.body?.error as { message?: unknown } | undefined;
            done('failed', {
              sha256,
              detail: `HTTP ${answer.status}: ${typeof error?.message === 'string' ? error.message : answer.text.slice(0, 300)}`,
            });
          }
        } catch (error) {
          if (signal?.aborted || (isApertusError(error) && error.code === 'interrupted')) throw error;
          done('failed', { sha256, detail: (error as Error).message });
        }
      }
      const count = (status: RagIngestDocument['status']) =>
        documents.filter((d) => d.status === status).length;
      const summary = {
        ingested: count('ingested'),
        replaced: count('replaced'),
        skipped: count('skipped'),
        failed: count('failed'),
      };
      return {
        ok: summary.failed === 0,
        host: transport.description,
        service: rag.name,
        port: rag.port,
        documents,
        summary,
      };
    },
  );
}
