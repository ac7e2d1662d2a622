/**
 * A Hugging Face Hub on 127.0.0.1 for the hf source tests, speaking the documented
 * protocol (shared/reference/runtime-facts.md §2): model info by revision, the recursive
 * tree listing paginated with `Link: <...>; rel="next"`, and `resolve` with X-Repo-Commit,
 * ETag, X-Linked-Etag / X-Linked-Size and, for LFS files, a 302 to a signed URL on a second
 * "CDN" origin (another port), Range with 206, and the Hub's 401/403/404 with X-Error-Code.
 * It counts the body bytes it serves per file and logs every request, Authorization
 * included, so tests can assert what was fetched and where the token went.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fixtureBytes } from './bundle-fixture.js';

export interface FakeFileSpec {
  path: string;
  content: Buffer | string;
  /** Stored in git LFS: listed with `lfs.oid` (sha256) and served through the CDN. */
  lfs?: boolean;
}

export interface FakeRepoSpec {
  /** 'ORG/NAME'. */
  id: string;
  files: FakeFileSpec[];
  /** Branches and tags that point at the repo's one commit; default ['main']. */
  refs?: string[];
  /** Gated: only tokens given `gatedAccess` may read it. */
  gated?: boolean;
  /** Returned as the model info's `cardData` when set. */
  cardData?: Record<string, unknown>;
  /** Names the repo had before a rename: the Hub answers them with a relative 307 to the new name. */
  formerIds?: string[];
}

export interface FakeFile {
  path: string;
  content: Buffer;
  lfs: boolean;
  sha256: string;
  /** Git blob id of the content: `sha1("blob <len>\0" + content)`. */
  gitOid: string;
  /** The tree listing's `oid`: for LFS files the blob id of the pointer file. */
  treeOid: string;
  /** What huggingface_hub names the cache blob: sha256 for LFS, the git blob id otherwise. */
  etag: string;
}

export interface FakeRepo {
  id: string;
  sha: string;
  refs: string[];
  gated: boolean;
  cardData: Record<string, unknown> | undefined;
  files: Map<string, FakeFile>;
}

export interface HubRequest {
  origin: 'hub' | 'cdn';
  method: string;
  /** Path and query as received. */
  url: string;
  range: string | undefined;
  authorization: string | undefined;
  status: number;
}

export interface FakeHubOptions {
  /** Tree entries per page; small, so tests go through pagination. */
  pageSize?: number;
  /** Tokens the Hub accepts; `gatedAccess` says whether the account accepted gated terms. */
  tokens?: Record<string, { gatedAccess: boolean }>;
}

export interface FakeHub {
  /** The Hub's base URL (for HF_ENDPOINT or hubUrl). */
  url: string;
  /** The CDN's origin: LFS downloads are redirected here. */
  cdnUrl: string;
  addRepo(spec: FakeRepoSpec): FakeRepo;
  requests: HubRequest[];
  /** Body bytes served for one file of one repo, by the Hub and the CDN together. */
  bytesServed(repo: string, path: string): number;
  /** Body bytes served for all files. */
  totalBytesServed(): number;
  resetCounters(): void;
  /** Serve these bytes for the file from now on, while the listing keeps the true hashes. */
  serveInstead(repo: string, path: string, content: Buffer): void;
  /**
   * The next body served for the file stops after `afterBytes`: 'close' ends the connection
   * (the client sees a truncated body), 'stall' keeps it open without sending more. The
   * promise resolves once those bytes are written.
   */
  interruptNext(repo: string, path: string, afterBytes: number, how: 'close' | 'stall'): Promise<void>;
  /** Answer Range requests for the file with 200 and the whole body, as some CDNs do (§2.4). */
  ignoreRange(repo: string, path: string): void;
  close(): Promise<void>;
}

export function gitBlobOid(content: Buffer): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}

function sha256Hex(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

function toFakeFile(spec: FakeFileSpec): FakeFile {
  const content = Buffer.isBuffer(spec.content) ? spec.content : Buffer.from(spec.content);
  const sha256 = sha256Hex(content);
  const gitOid = gitBlobOid(content);
  const lfs = spec.lfs === true;
  // What git stores for an LFS file is this pointer (git-lfs spec v1).
  const pointer = Buffer.from(
    `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${content.length}\n`,
  );
  return {
    path: spec.path,
    content,
    lfs,
    sha256,
    gitOid,
    treeOid: lfs ? gitBlobOid(pointer) : gitOid,
    etag: lfs ? sha256 : gitOid,
  };
}

interface Interruption {
  afterBytes: number;
  how: 'close' | 'stall';
  done: () => void;
}

export async function startFakeHub(options: FakeHubOptions = {}): Promise<FakeHub> {
  const pageSize = options.pageSize ?? 3;
  const tokens = options.tokens ?? {};
  const secret = randomBytes(16);
  const repos = new Map<string, FakeRepo>();
  const renamed = new Map<string, string>();
  const requests: HubRequest[] = [];
  const served = new Map<string, number>();
  const overrides = new Map<string, Buffer>();
  const interruptions = new Map<string, Interruption>();
  const rangeIgnored = new Set<string>();
  const key = (repo: string, path: string) => `${repo}\0${path}`;
  let hubUrl = '';
  let cdnUrl = '';

  const sign = (repo: string, sha256: string, path: string) =>
    createHmac('sha256', secret).update(`${repo}/${sha256}/${path}`).digest('hex');

  const log = (origin: HubRequest['origin'], req: IncomingMessage, res: ServerResponse) => {
    const entry: HubRequest = {
      origin,
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      range: req.headers.range,
      authorization: req.headers.authorization,
      status: 0,
    };
    requests.push(entry);
    res.once('finish', () => {
      entry.status = res.statusCode;
    });
    res.once('close', () => {
      entry.status ||= res.statusCode;
    });
  };

  const hubError = (res: ServerResponse, status: number, code: string | undefined, message: string) => {
    res.writeHead(status, {
      'content-type': 'application/json',
      ...(code ? { 'x-error-code': code } : {}),
      'x-error-message': message,
    });
    res.end(JSON.stringify({ error: message }));
  };

  /** The Hub's access rules; answers and returns false when the request may not proceed. */
  const authorize = (req: IncomingMessage, res: ServerResponse, repoId: string): FakeRepo | undefined => {
    const header = req.headers.authorization;
    const token = header?.startsWith('Bearer ') ? header.slice('Bearer '.length) : undefined;
    const account = token === undefined ? undefined : tokens[token];
    if (header !== undefined && account === undefined) {
      hubError(res, 401, undefined, 'Invalid credentials in Authorization header');
      return undefined;
    }
    const repo = repos.get(repoId);
    if (!repo) {
      // §2.3: without a token the Hub answers 401 for a missing repo, as for a private one.
      hubError(res, account ? 404 : 401, 'RepoNotFound', 'Repository not found');
      return undefined;
    }
    if (repo.gated && !account) {
      hubError(
        res,
        401,
        'GatedRepo',
        `Access to model ${repoId} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
      );
      return undefined;
    }
    if (repo.gated && account && !account.gatedAccess) {
      hubError(
        res,
        403,
        'GatedRepo',
        `Access to model ${repoId} is restricted and you are not in the authorized list. Visit ${hubUrl}/${repoId} to ask for access.`,
      );
      return undefined;
    }
    return repo;
  };

  const commitOf = (repo: FakeRepo, revision: string) =>
    revision === repo.sha || repo.refs.includes(revision) ? repo.sha : undefined;

  const serveBody = (
    req: IncomingMessage,
    res: ServerResponse,
    repo: FakeRepo,
    file: FakeFile,
    headers: Record<string, string>,
  ) => {
    const fileKey = key(repo.id, file.path);
    const content = overrides.get(fileKey) ?? file.content;
    let start = 0;
    let end = content.length - 1;
    let status = 200;
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (range && !rangeIgnored.has(fileKey)) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), content.length - 1) : content.length - 1;
      if (start >= content.length) {
        res.writeHead(416, { 'content-range': `bytes */${content.length}` });
        res.end();
        return;
      }
      status = 206;
    }
    const body = content.subarray(start, end + 1);
    res.writeHead(status, {
      ...headers,
      'accept-ranges': 'bytes',
      'content-type': 'application/octet-stream',
      'content-length': String(body.length),
      ...(status === 206 ? { 'content-range': `bytes ${start}-${end}/${content.length}` } : {}),
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const count = (bytes: number) => served.set(fileKey, (served.get(fileKey) ?? 0) + bytes);
    const interruption = interruptions.get(fileKey);
    if (interruption) {
      interruptions.delete(fileKey);
      const head = body.subarray(0, Math.min(interruption.afterBytes, body.length));
      count(head.length);
      res.write(head, () => {
        if (interruption.how === 'close') res.socket?.destroy();
        interruption.done();
      });
      return;
    }
    count(body.length);
    res.end(body);
  };

  const segments = (req: IncomingMessage) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    return { url, parts: url.pathname.split('/').slice(1).map(decodeURIComponent) };
  };

  const hub = createServer((req, res) => {
    log('hub', req, res);
    const { url, parts } = segments(req);
    // A renamed repo: a relative redirect, which clients follow with their Authorization (§2.2).
    const at = parts[0] === 'api' ? 2 : 0;
    const newId = renamed.get(`${parts[at]}/${parts[at + 1]}`);
    if (newId !== undefined) {
      const rest = url.pathname
        .split('/')
        .slice(at + 3)
        .join('/');
      const prefix = at === 2 ? '/api/models/' : '/';
      res.writeHead(307, { location: `${prefix}${newId}${rest ? `/${rest}` : ''}${url.search}` });
      res.end();
      return;
    }
    // GET /api/models/{org}/{name}[/revision/{rev}]
    if (parts[0] === 'api' && parts[1] === 'models' && (parts.length === 4 || parts[4] === 'revision')) {
      const repoId = `${parts[2]}/${parts[3]}`;
      const repo = authorize(req, res, repoId);
      if (!repo) return;
      const revision = parts.length === 4 ? 'main' : parts.slice(5).join('/');
      if (commitOf(repo, revision) === undefined) {
        hubError(res, 404, 'RevisionNotFound', `Invalid rev id: ${revision}`);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          _id: repo.sha.slice(0, 24),
          id: repo.id,
          modelId: repo.id,
          sha: repo.sha,
          private: false,
          gated: repo.gated ? 'auto' : false,
          disabled: false,
          tags: ['safetensors', 'apertus', 'text-generation'],
          pipeline_tag: 'text-generation',
          library_name: 'transformers',
          siblings: [...repo.files.keys()].map((rfilename) => ({ rfilename })),
          ...(repo.cardData ? { cardData: repo.cardData } : {}),
        }),
      );
      return;
    }
    // GET /api/models/{org}/{name}/tree/{rev}[/{path}]?recursive=true&cursor=...
    if (parts[0] === 'api' && parts[1] === 'models' && parts[4] === 'tree' && parts[5] !== undefined) {
      const repoId = `${parts[2]}/${parts[3]}`;
      const repo = authorize(req, res, repoId);
      if (!repo) return;
      if (commitOf(repo, parts[5]) === undefined) {
        hubError(res, 404, 'RevisionNotFound', `Invalid rev id: ${parts[5]}`);
        return;
      }
      const base = parts.slice(6).join('/');
      const recursive = url.searchParams.get('recursive') === 'true';
      const entries = treeEntries(repo).filter((entry) => {
        if (base && !entry.path.startsWith(`${base}/`)) return false;
        const rest = base ? entry.path.slice(base.length + 1) : entry.path;
        return recursive || !rest.includes('/');
      });
      const offset = Number(Buffer.from(url.searchParams.get('cursor') ?? '', 'base64url').toString() || '0');
      const page = entries.slice(offset, offset + pageSize);
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (offset + pageSize < entries.length) {
        const next = new URL(url.pathname + url.search, hubUrl);
        next.searchParams.set('cursor', Buffer.from(String(offset + pageSize)).toString('base64url'));
        headers.link = `<${next.href}>; rel="next"`;
      }
      res.writeHead(200, headers);
      res.end(JSON.stringify(page));
      return;
    }
    // GET|HEAD /{org}/{name}/resolve/{rev}/{path}
    if (parts[2] === 'resolve' && parts.length >= 5) {
      const repoId = `${parts[0]}/${parts[1]}`;
      const repo = authorize(req, res, repoId);
      if (!repo) return;
      const commit = commitOf(repo, parts[3] ?? '');
      if (commit === undefined) {
        hubError(res, 404, 'RevisionNotFound', `Invalid rev id: ${parts[3]}`);
        return;
      }
      const path = parts.slice(4).join('/');
      const file = repo.files.get(path);
      if (!file) {
        hubError(res, 404, 'EntryNotFound', `${path} does not exist on "${parts[3]}"`);
        return;
      }
      if (file.lfs) {
        const location = new URL(`/repos/${repo.id}/${file.sha256}`, cdnUrl);
        location.searchParams.set('path', file.path);
        location.searchParams.set('Expires', String(Math.floor(Date.now() / 1000) + 3600));
        location.searchParams.set('Signature', sign(repo.id, file.sha256, file.path));
        const text = `Found. Redirecting to ${location.href}`;
        res.writeHead(302, {
          location: location.href,
          'x-repo-commit': commit,
          etag: `"${file.treeOid}"`,
          'x-linked-etag': `"${file.sha256}"`,
          'x-linked-size': String(file.content.length),
          'content-type': 'text/plain; charset=utf-8',
          'content-length': String(Buffer.byteLength(text)),
        });
        res.end(req.method === 'HEAD' ? undefined : text);
        return;
      }
      serveBody(req, res, repo, file, { 'x-repo-commit': commit, etag: `"${file.gitOid}"` });
      return;
    }
    hubError(res, 404, undefined, 'Not Found');
  });

  const cdn = createServer((req, res) => {
    log('cdn', req, res);
    const { url, parts } = segments(req);
    // GET /repos/{org}/{name}/{sha256}?path=...&Expires=...&Signature=...
    const repo = repos.get(`${parts[1]}/${parts[2]}`);
    const path = url.searchParams.get('path') ?? '';
    const file = repo?.files.get(path);
    if (
      parts[0] !== 'repos' ||
      !repo ||
      !file ||
      file.sha256 !== parts[3] ||
      url.searchParams.get('Signature') !== sign(repo.id, file.sha256, path)
    ) {
      res.writeHead(403, { 'content-type': 'application/xml' });
      res.end('<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
      return;
    }
    serveBody(req, res, repo, file, { etag: `"${file.sha256}"` });
  });

  const listen = (server: Server) =>
    new Promise<string>((resolve) =>
      server.listen(0, '127.0.0.1', () =>
        resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
      ),
    );
  hubUrl = await listen(hub);
  cdnUrl = await listen(cdn);

  return {
    url: hubUrl,
    cdnUrl,
    requests,
    addRepo(spec) {
      const files = new Map(spec.files.map((file) => [file.path, toFakeFile(file)] as const));
      const sha = createHash('sha1')
        .update(spec.id)
        .update(JSON.stringify([...files.values()].map((file) => [file.path, file.gitOid])))
        .digest('hex');
      const repo: FakeRepo = {
        id: spec.id,
        sha,
        refs: spec.refs ?? ['main'],
        gated: spec.gated === true,
        cardData: spec.cardData,
        files,
      };
      repos.set(spec.id, repo);
      for (const former of spec.formerIds ?? []) renamed.set(former, spec.id);
      return repo;
    },
    bytesServed: (repo, path) => served.get(key(repo, path)) ?? 0,
    totalBytesServed: () => [...served.values()].reduce((sum, bytes) => sum + bytes, 0),
    resetCounters() {
      served.clear();
      requests.length = 0;
    },
    serveInstead(repo, path, content) {
      overrides.set(key(repo, path), content);
    },
    interruptNext(repo, path, afterBytes, how) {
      return new Promise<void>((resolve) =>
        interruptions.set(key(repo, path), { afterBytes, how, done: resolve }),
      );
    },
    ignoreRange(repo, path) {
      rangeIgnored.add(key(repo, path));
    },
    async close() {
      for (const server of [hub, cdn]) {
        server.closeAllConnections();
        await new Promise((resolve) => server.close(resolve));
      }
    },
  };
}

/** Every file plus the folders above them, as the tree endpoint lists them (§2.1). */
function treeEntries(repo: FakeRepo): { path: string; type: string }[] {
  const entries: { path: string; entry: { path: string; type: string } & Record<string, unknown> }[] = [];
  const folders = new Set<string>();
  for (const file of repo.files.values()) {
    const segments = file.path.split('/');
    for (let depth = 1; depth < segments.length; depth++) folders.add(segments.slice(0, depth).join('/'));
    entries.push({
      path: file.path,
      entry: {
        type: 'file',
        oid: file.treeOid,
        size: file.content.length,
        path: file.path,
        ...(file.lfs ? { lfs: { oid: file.sha256, size: file.content.length, pointerSize: 134 } } : {}),
      },
    });
  }
  for (const folder of folders) {
    entries.push({
      path: folder,
      entry: {
        type: 'directory',
        oid: createHash('sha1').update(folder).digest('hex'),
        size: 0,
        path: folder,
      },
    });
  }
  return entries.sort((a, b) => (a.path < b.path ? -1 : 1)).map((item) => item.entry);
}

interface TensorSpec {
  name: string;
  shape: number[];
}

function tensorBytes(tensors: TensorSpec[]): number {
  return tensors.reduce(
    (sum, tensor) => sum + tensor.shape.reduce((product, dim) => product * dim, 1) * 2,
    0,
  );
}

/** A real safetensors file: 8-byte LE header length, JSON header padded to 8 bytes, BF16 data. */
export function safetensorsFile(seed: string, tensors: TensorSpec[]): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const tensor of tensors) {
    const bytes = tensorBytes([tensor]);
    header[tensor.name] = { dtype: 'BF16', shape: tensor.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, Buffer.from(json), fixtureBytes(seed, offset)]);
}

const SHARD_1: TensorSpec[] = [
  { name: 'model.embed_tokens.weight', shape: [1024, 512] },
  { name: 'model.layers.0.attention_layernorm.weight', shape: [512] },
  { name: 'model.layers.0.self_attn.q_proj.weight', shape: [512, 512] },
  { name: 'model.layers.0.self_attn.k_proj.weight', shape: [128, 512] },
  { name: 'model.layers.0.self_attn.v_proj.weight', shape: [128, 512] },
  { name: 'model.layers.0.self_attn.o_proj.weight', shape: [512, 512] },
  { name: 'model.layers.0.self_attn.q_norm.weight', shape: [64] },
  { name: 'model.layers.0.self_attn.k_norm.weight', shape: [64] },
];

const SHARD_2: TensorSpec[] = [
  { name: 'model.layers.0.feedforward_layernorm.weight', shape: [512] },
  { name: 'model.layers.0.mlp.up_proj.weight', shape: [1344, 512] },
  { name: 'model.layers.0.mlp.down_proj.weight', shape: [512, 1344] },
  { name: 'model.layers.0.mlp.act_fn.alpha_p', shape: [1] },
  { name: 'model.layers.0.mlp.act_fn.alpha_n', shape: [1] },
  { name: 'model.layers.0.mlp.act_fn.beta', shape: [1] },
  { name: 'model.layers.0.mlp.act_fn.eps', shape: [1] },
  { name: 'model.norm.weight', shape: [512] },
  { name: 'lm_head.weight', shape: [1024, 512] },
];

const README = `---
license: apache-2.0
language:
- multilingual
library_name: transformers
pipeline_tag: text-generation
tags:
- multilingual
- compliant
- swiss-ai
- apertus
extra_gated_prompt: "Please read the disclaimer before downloading."
---

# Apertus (test double)

A small stand-in with the file layout of swiss-ai/Apertus-8B-Instruct-2509; the weights are random.
`;

function tokenizerJson(): string {
  const special = ['<unk>', '<s>', '</s>', '<pad>'];
  const vocab: Record<string, number> = {};
  special.forEach((token, id) => {
    vocab[token] = id;
  });
  for (let id = special.length; id < 3000; id++) vocab[`tok${id.toString(36)}`] = id;
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: special.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel' },
    model: { type: 'BPE', dropout: null, unk_token: null, vocab, merges: [] },
  });
}

/** Generated once: every repo made from apertusLikeRepo shares the same random weights. */
let shards: [Buffer, Buffer] | undefined;

/**
 * The file layout of swiss-ai/Apertus-8B-Instruct-2509 (runtime-facts §1.3) with the 8B
 * config of §1.2 (test/fixtures/models), random BF16 weights in two small shards, and the
 * model card's `license: apache-2.0` front matter.
 */
export function apertusLikeRepo(id = 'swiss-ai/Apertus-8B-Instruct-2509'): FakeRepoSpec {
  const config = readFileSync(
    new URL('../fixtures/models/apertus-8b-instruct-2509/config.json', import.meta.url),
  );
  shards ??= [safetensorsFile('apertus/1', SHARD_1), safetensorsFile('apertus/2', SHARD_2)];
  const [shard1, shard2] = shards;
  const weightMap: Record<string, string> = {};
  for (const tensor of SHARD_1) weightMap[tensor.name] = 'model-00001-of-00002.safetensors';
  for (const tensor of SHARD_2) weightMap[tensor.name] = 'model-00002-of-00002.safetensors';
  const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
  return {
    id,
    refs: ['main', 'v1.0'],
    files: [
      {
        path: '.gitattributes',
        content:
          '*.safetensors filter=lfs diff=lfs merge=lfs -text\ntokenizer.json filter=lfs diff=lfs merge=lfs -text\n',
      },
      { path: 'README.md', content: README },
      { path: 'config.json', content: config },
      {
        path: 'generation_config.json',
        content: json({
          _from_model_config: true,
          bos_token_id: 1,
          eos_token_id: [2, 68, 72],
          pad_token_id: 3,
        }),
      },
      {
        path: 'model.safetensors.index.json',
        content: json({
          metadata: { total_size: tensorBytes([...SHARD_1, ...SHARD_2]) },
          weight_map: weightMap,
        }),
      },
      { path: 'model-00001-of-00002.safetensors', content: shard1, lfs: true },
      { path: 'model-00002-of-00002.safetensors', content: shard2, lfs: true },
      { path: 'tokenizer.json', content: tokenizerJson(), lfs: true },
      {
        path: 'tokenizer_config.json',
        content: json({ bos_token: '<s>', eos_token: '</s>', pad_token: '<pad>', model_max_length: 65536 }),
      },
      {
        path: 'special_tokens_map.json',
        content: json({ bos_token: '<s>', eos_token: '</s>', pad_token: '<pad>' }),
      },
      {
        path: 'assets/apertus-logo.svg',
        content:
          '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>\n',
      },
    ],
  };
}
