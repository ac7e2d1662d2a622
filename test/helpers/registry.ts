/**
 * Real OCI registries on 127.0.0.1 for the oci source tests (DESIGN.md section 7): Debian's
 * `docker-registry` (distribution 2.8) with its own config and a temp storage directory,
 * optionally behind htpasswd basic auth or token auth with a token server of our own; test
 * images built with umoci into an OCI layout and pushed with skopeo. Plus a proxy in front of
 * a registry that can cut a blob download short or redirect blobs to a "storage" origin.
 *
 * The runnable image holds one file, /hello: a 171-byte static x86-64 Linux program this
 * helper writes byte by byte (write(1, marker) then exit(0)), so nothing from the host is
 * needed inside the image and no compiler or busybox is needed to make it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  sign as cryptoSign,
  type KeyObject,
  randomBytes,
} from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';

const REGISTRY_BIN = '/usr/bin/docker-registry';

/** Whether this machine has what the registry e2e tests need; `why` says what to install. */
export function registryRequirement(): { ok: boolean; why: string } {
  const missing: string[] = [];
  const has = (command: string) =>
    ['/usr/bin', '/usr/sbin', '/bin', '/sbin', '/usr/local/bin'].some((dir) =>
      existsSync(join(dir, command)),
    );
  if (!existsSync(REGISTRY_BIN)) missing.push('docker-registry');
  for (const [command, pkg] of [
    ['umoci', 'umoci'],
    ['skopeo', 'skopeo'],
    ['openssl', 'openssl'],
    ['perl', 'perl'],
  ] as const) {
    if (!has(command)) missing.push(pkg);
  }
  if (missing.length > 0) return { ok: false, why: `(skipped: apt-get install ${missing.join(' ')})` };
  return { ok: true, why: '' };
}

/** Whether podman can run containers here (the load-and-run acceptance test). */
export function podmanRequirement(): { ok: boolean; why: string } {
  const missing = ['podman', 'runc'].filter(
    (command) => !['/usr/bin', '/usr/sbin'].some((dir) => existsSync(join(dir, command))),
  );
  if (process.getuid?.() !== 0) return { ok: false, why: '(skipped: podman tests run as root)' };
  if (missing.length > 0) return { ok: false, why: `(skipped: apt-get install ${missing.join(' ')})` };
  return { ok: true, why: '' };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createNetServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------
// The tiny static program

/** A static x86-64 ELF that writes `marker\n` to stdout and exits 0 (no libc, no loader). */
export function tinyStaticProgram(marker: string): Buffer {
  const message = Buffer.from(`${marker}\n`);
  const base = 0x400000n;
  const codeOffset = 120; // ELF header (64) + one program header (56)
  // mov eax,1; mov edi,1; lea rsi,[rip+16]; mov edx,len; syscall; mov eax,60; xor edi,edi; syscall
  const code = Buffer.from([
    0xb8, 1, 0, 0, 0, 0xbf, 1, 0, 0, 0, 0x48, 0x8d, 0x35, 16, 0, 0, 0, 0xba, 0, 0, 0, 0, 0x0f, 0x05, 0xb8, 60,
    0, 0, 0, 0x31, 0xff, 0x0f, 0x05,
  ]);
  code.writeUInt32LE(message.length, 18);
  const total = BigInt(codeOffset + code.length + message.length);
  const header = Buffer.alloc(codeOffset);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]).copy(header, 0); // ELF, 64-bit, little endian, SYSV
  header.writeUInt16LE(2, 16); // ET_EXEC
  header.writeUInt16LE(0x3e, 18); // x86-64
  header.writeUInt32LE(1, 20);
  header.writeBigUInt64LE(base + BigInt(codeOffset), 24); // entry
  header.writeBigUInt64LE(64n, 32); // program headers right after the ELF header
  header.writeUInt16LE(64, 52);
  header.writeUInt16LE(56, 54);
  header.writeUInt16LE(1, 56);
  header.writeUInt32LE(1, 64); // PT_LOAD
  header.writeUInt32LE(5, 68); // R+X
  header.writeBigUInt64LE(base, 80);
  header.writeBigUInt64LE(base, 88);
  header.writeBigUInt64LE(total, 96);
  header.writeBigUInt64LE(total, 104);
  header.writeBigUInt64LE(0x1000n, 112);
  return Buffer.concat([header, code, message]);
}

// ---------------------------------------------------------------------------------------
// Test images

export interface LayoutImage {
  /** The tag inside the OCI layout. */
  tag: string;
  /** Digest of what the tag names (a manifest, or the index for 'multi'). */
  digest: string;
  mediaType: string;
}

export interface TestImages {
  layout: string;
  marker: string;
  /** amd64, runs /hello; label org.opencontainers.image.licenses=Apache-2.0. */
  runnable: LayoutImage;
  arm64: LayoutImage;
  /** An index: runnable (linux/amd64), arm64 (linux/arm64), and an attestation (unknown/unknown). */
  multi: LayoutImage;
  /** amd64 with a 2 MiB incompressible layer, for interrupted downloads. */
  big: LayoutImage;
  /** amd64 with a layer of its own, for the corruption tests. */
  victim: LayoutImage;
  /** amd64 whose manifest is its own, for corrupting a manifest. */
  victimManifest: LayoutImage;
}

interface LayoutIndex {
  schemaVersion: 2;
  manifests: Array<{ mediaType: string; digest: string; size: number; annotations?: Record<string, string> }>;
}

async function readLayoutIndex(layout: string): Promise<LayoutIndex> {
  return JSON.parse(await readFile(join(layout, 'index.json'), 'utf8')) as LayoutIndex;
}

async function layoutImage(layout: string, tag: string): Promise<LayoutImage> {
  const entry = (await readLayoutIndex(layout)).manifests.find(
    (m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag,
  );
  if (entry === undefined) throw new Error(`no ${tag} in ${layout}`);
  return { tag, digest: entry.digest, mediaType: entry.mediaType };
}

export async function readLayoutBlob(layout: string, digest: string): Promise<Buffer> {
  return readFile(join(layout, 'blobs', 'sha256', digest.replace('sha256:', '')));
}

async function writeLayoutBlob(layout: string, bytes: Buffer): Promise<{ digest: string; size: number }> {
  const hex = createHash('sha256').update(bytes).digest('hex');
  await writeFile(join(layout, 'blobs', 'sha256', hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
}

async function umociImage(
  layout: string,
  work: string,
  tag: string,
  files: Array<{ name: string; content: Buffer; mode: number }>,
  config: string[],
): Promise<LayoutImage> {
  await execa('umoci', ['new', '--image', `${layout}:${tag}`]);
  for (const file of files) {
    const source = join(work, `${tag}-${file.name}`);
    await writeFile(source, file.content, { mode: file.mode });
    await execa('umoci', ['insert', '--image', `${layout}:${tag}`, source, `/${file.name}`]);
  }
  await execa('umoci', ['config', '--image', `${layout}:${tag}`, ...config]);
  return layoutImage(layout, tag);
}

/** Builds every test image into one OCI layout under `dir`. */
export async function buildTestImages(dir: string): Promise<TestImages> {
  const layout = join(dir, 'layout');
  const work = join(dir, 'image-files');
  await mkdir(work, { recursive: true });
  await execa('umoci', ['init', '--layout', layout]);
  const marker = `apertus-oci-ok-${randomBytes(4).toString('hex')}`;
  const amd64 = ['--os', 'linux', '--architecture', 'amd64'];

  const runnable = await umociImage(
    layout,
    work,
    'runnable',
    [{ name: 'hello', content: tinyStaticProgram(marker), mode: 0o755 }],
    [...amd64, '--config.cmd', '/hello', '--config.label', 'org.opencontainers.image.licenses=Apache-2.0'],
  );
  const arm64 = await umociImage(
    layout,
    work,
    'arm64',
    [{ name: 'arch.txt', content: Buffer.from('arm64\n'), mode: 0o644 }],
    ['--os', 'linux', '--architecture', 'arm64', '--config.cmd', '/arch.txt'],
  );
  const big = await umociImage(
    layout,
    work,
    'big',
    [{ name: 'big.bin', content: randomBytes(2 << 20), mode: 0o644 }],
    [...amd64, '--config.cmd', '/big.bin'],
  );
  const victim = await umociImage(
    layout,
    work,
    'victim',
    [
      {
        name: 'victim.txt',
        content: Buffer.from(`victim ${randomBytes(16).toString('hex')}\n`),
        mode: 0o644,
      },
    ],
    [...amd64],
  );
  const victimManifest = await umociImage(
    layout,
    work,
    'victim-manifest',
    [
      {
        name: 'victim2.txt',
        content: Buffer.from(`victim2 ${randomBytes(16).toString('hex')}\n`),
        mode: 0o644,
      },
    ],
    [...amd64],
  );

  // An attestation manifest as buildx attaches them: platform unknown/unknown, annotated.
  const statement = await writeLayoutBlob(
    layout,
    Buffer.from('{"_type":"https://in-toto.io/Statement/v0.1"}'),
  );
  const attestationConfig = await writeLayoutBlob(
    layout,
    Buffer.from(
      JSON.stringify({
        architecture: 'unknown',
        os: 'unknown',
        config: {},
        rootfs: { type: 'layers', diff_ids: [statement.digest] },
      }),
    ),
  );
  const attestation = await writeLayoutBlob(
    layout,
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...attestationConfig },
        layers: [
          {
            mediaType: 'application/vnd.in-toto+json',
            ...statement,
            annotations: { 'in-toto.io/predicate-type': 'https://spdx.dev/Document' },
          },
        ],
      }),
    ),
  );
  const manifestSize = async (digest: string) => (await readLayoutBlob(layout, digest)).length;
  const indexBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: arm64.digest,
          size: await manifestSize(arm64.digest),
          platform: { architecture: 'arm64', os: 'linux', variant: 'v8' },
        },
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...attestation,
          platform: { architecture: 'unknown', os: 'unknown' },
          annotations: {
            'vnd.docker.reference.digest': runnable.digest,
            'vnd.docker.reference.type': 'attestation-manifest',
          },
        },
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: runnable.digest,
          size: await manifestSize(runnable.digest),
          platform: { architecture: 'amd64', os: 'linux' },
        },
      ],
    }),
  );
  const index = await writeLayoutBlob(layout, indexBytes);
  const layoutIndex = await readLayoutIndex(layout);
  layoutIndex.manifests.push({
    mediaType: 'application/vnd.oci.image.index.v1+json',
    ...index,
    annotations: { 'org.opencontainers.image.ref.name': 'multi' },
  });
  await writeFile(join(layout, 'index.json'), JSON.stringify(layoutIndex));
  const multi = await layoutImage(layout, 'multi');
  return { layout, marker, runnable, arm64, multi, big, victim, victimManifest };
}

// ---------------------------------------------------------------------------------------
// The registry

export interface TestRegistryOptions {
  /** Where its config, storage and auth files go. */
  dir: string;
  auth?: 'none' | 'basic' | 'bearer';
  /** Accounts for basic auth or the token server. */
  users?: Record<string, string>;
}

export interface TestRegistry {
  /** '127.0.0.1:PORT', as written in image references. */
  host: string;
  url: string;
  storageDir: string;
  tokenServer: TokenServer | undefined;
  /** A registry account (the first of `users`), for pushing. */
  account: { username: string; password: string } | undefined;
  /** skopeo copy from the test layout into this registry. */
  push(
    layout: string,
    tag: string,
    destination: string,
    options?: { all?: boolean; format?: 'v2s2' | 'oci' },
  ): Promise<void>;
  /** The file the registry keeps a blob's bytes in. */
  blobDataPath(digest: string): string;
  stop(): Promise<void>;
}

export async function startRegistry(options: TestRegistryOptions): Promise<TestRegistry> {
  const { dir } = options;
  const auth = options.auth ?? 'none';
  const storageDir = join(dir, 'storage');
  await mkdir(storageDir, { recursive: true });
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const users = options.users ?? {};
  const first = Object.entries(users)[0];
  const account = first === undefined ? undefined : { username: first[0], password: first[1] };

  let tokenServer: TokenServer | undefined;
  const lines = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${storageDir}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${host}`,
    `  secret: ${randomBytes(16).toString('hex')}`,
  ];
  if (auth === 'basic') {
    const htpasswd = join(dir, 'htpasswd');
    const entries: string[] = [];
    for (const [user, password] of Object.entries(users)) entries.push(`${user}:${await bcrypt(password)}`);
    await writeFile(htpasswd, `${entries.join('\n')}\n`);
    lines.push('auth:', '  htpasswd:', '    realm: apertus-test', `    path: ${htpasswd}`);
  } else if (auth === 'bearer') {
    tokenServer = await startTokenServer({ dir, users, service: 'apertus-test-registry' });
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${tokenServer.url}/token`,
      `    service: ${tokenServer.service}`,
      `    issuer: ${tokenServer.issuer}`,
      `    rootcertbundle: ${tokenServer.certPath}`,
    );
  }
  const configPath = join(dir, 'registry.yml');
  await writeFile(configPath, `${lines.join('\n')}\n`);

  const child = spawn(REGISTRY_BIN, ['serve', configPath], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  await waitForHttp(`http://${host}/v2/`, child, () => stderr);

  return {
    host,
    url: `http://${host}`,
    storageDir,
    tokenServer,
    account,
    async push(layout, tag, destination, pushOptions = {}) {
      const args = ['copy', '--quiet', '--dest-tls-verify=false'];
      if (pushOptions.all) args.push('--all');
      if (pushOptions.format) args.push('--format', pushOptions.format);
      if (account) args.push('--dest-creds', `${account.username}:${account.password}`);
      args.push(`oci:${layout}:${tag}`, `docker://${host}/${destination}`);
      await execa('skopeo', args);
    },
    blobDataPath(digest) {
      const hex = digest.replace('sha256:', '');
      return join(storageDir, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
    },
    async stop() {
      await stopChild(child);
      await tokenServer?.stop();
    },
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

async function waitForHttp(url: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`docker-registry exited with ${child.exitCode}: ${stderr()}`);
    try {
      const response = await fetch(url);
      await response.body?.cancel();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`docker-registry did not answer on ${url}: ${stderr()}`);
}

/** htpasswd needs bcrypt (distribution accepts nothing else); glibc's crypt(3) makes it, via perl. */
async function bcrypt(password: string): Promise<string> {
  const alphabet = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const salt = Array.from(randomBytes(22), (byte) => alphabet[byte % 64]).join('');
  const { stdout } = await execa('perl', [
    '-e',
    'print crypt($ARGV[0], $ARGV[1])',
    password,
    `$2b$05$${salt}`,
  ]);
  if (!stdout.startsWith('$2b$')) throw new Error('crypt(3) here cannot make bcrypt hashes');
  return stdout;
}

// ---------------------------------------------------------------------------------------
// The token server (distribution docs/spec/auth/token.md and jwt.md)

export interface TokenRequest {
  service: string | null;
  scopes: string[];
  /** The user that authenticated with Basic, if any. */
  user: string | undefined;
  /** Whether an Authorization header came at all. */
  authorization: boolean;
  status: number;
}

export interface TokenServer {
  url: string;
  service: string;
  issuer: string;
  certPath: string;
  requests: TokenRequest[];
  /** Every token issued, so tests can check none was written anywhere. */
  issued: string[];
  stop(): Promise<void>;
}

async function startTokenServer(options: {
  dir: string;
  users: Record<string, string>;
  service: string;
}): Promise<TokenServer> {
  const keyPath = join(options.dir, 'token.key');
  const certPath = join(options.dir, 'token.crt');
  await execa('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    keyPath,
    '-out',
    certPath,
    '-days',
    '2',
    '-subj',
    '/CN=apertus-test-token',
  ]);
  const privateKey = createPrivateKey(await readFile(keyPath));
  const kid = libtrustKeyId(createPublicKey(await readFile(certPath)));
  const issuer = 'apertus-test-issuer';
  const requests: TokenRequest[] = [];
  const issued: string[] = [];

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const header = req.headers.authorization;
    let user: string | undefined;
    let status = 200;
    if (header !== undefined) {
      const decoded = Buffer.from(header.replace(/^Basic\s+/i, ''), 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const name = decoded.slice(0, colon);
      if (colon > 0 && options.users[name] === decoded.slice(colon + 1)) user = name;
      else status = 401;
    }
    const scopes = url.searchParams.getAll('scope');
    requests.push({
      service: url.searchParams.get('service'),
      scopes,
      user,
      authorization: header !== undefined,
      status,
    });
    if (url.pathname !== '/token') status = 404;
    if (status !== 200) {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }));
      return;
    }
    // Anonymous callers get a token that grants nothing, as Docker Hub does for private images.
    const access = user === undefined ? [] : scopes.flatMap(parseScope);
    const now = Math.floor(Date.now() / 1000);
    const token = signJwt(
      { alg: 'ES256', typ: 'JWT', kid },
      {
        iss: issuer,
        sub: user ?? '',
        aud: options.service,
        exp: now + 300,
        nbf: now - 10,
        iat: now,
        jti: randomBytes(8).toString('hex'),
        access,
      },
      privateKey,
    );
    issued.push(token);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }),
    );
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    service: options.service,
    issuer,
    certPath,
    requests,
    issued,
    stop: () => close(server),
  };
}

function parseScope(scope: string): Array<{ type: string; name: string; actions: string[] }> {
  const [type, ...rest] = scope.split(':');
  const actions = rest.pop();
  const name = rest.join(':');
  if (type !== 'repository' || actions === undefined || name === '') return [];
  return [{ type, name, actions: actions.split(',') }];
}

function base64url(bytes: Buffer | string): string {
  return Buffer.from(bytes).toString('base64url');
}

function signJwt(header: object, payload: object, key: KeyObject): string {
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}`;
  const signature = cryptoSign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${base64url(signature)}`;
}

/**
 * The key id distribution looks a token's `kid` up by (libtrust `KeyID`): the sha256 of the
 * DER public key, first 240 bits, base32 without padding, in groups of four joined by ':'.
 */
function libtrustKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const digest = createHash('sha256').update(der).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of digest) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return out.match(/.{4}/g)?.join(':') ?? out;
}

async function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : 0);
    });
  });
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

// ---------------------------------------------------------------------------------------
// A proxy in front of a registry

export interface ProxiedRequest {
  method: string;
  path: string;
  range: string | undefined;
  authorization: string | undefined;
  status: number;
  /** Body bytes passed on to the client (fewer than sent when the proxy cut the response). */
  bytesServed: number;
}

export interface RegistryProxy {
  /** '127.0.0.1:PORT'. */
  host: string;
  requests: ProxiedRequest[];
  /** Requests the storage origin got (only with `redirectBlobs`). */
  storageRequests: ProxiedRequest[];
  /** Cut the next `times` responses for this blob after `afterBytes` body bytes. */
  cutBlob(digest: string, afterBytes: number, times?: number): void;
  stop(): Promise<void>;
}

/**
 * Forwards everything to `registry`. With `redirectBlobs`, blob GETs are answered with a 307
 * to a second origin (another port, like a storage backend's signed URL) that serves the
 * blob's bytes from the registry's storage and records what headers reached it.
 */
export async function startRegistryProxy(
  registry: TestRegistry,
  options: { redirectBlobs?: boolean } = {},
): Promise<RegistryProxy> {
  const [targetHost, targetPort] = registry.host.split(':');
  const requests: ProxiedRequest[] = [];
  const storageRequests: ProxiedRequest[] = [];
  const cuts = new Map<string, { afterBytes: number; times: number }>();

  const storage = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const digest = url.pathname.replace(/^\/blob\//, '');
    const record: ProxiedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      range: req.headers.range,
      authorization: req.headers.authorization,
      status: 200,
      bytesServed: 0,
    };
    storageRequests.push(record);
    const path = registry.blobDataPath(digest);
    stat(path).then(
      (info) => {
        const match = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
        const start = match?.[1] === undefined ? 0 : Number(match[1]);
        record.status = start > 0 ? 206 : 200;
        res.writeHead(record.status, {
          'content-type': 'application/octet-stream',
          'content-length': String(info.size - start),
          ...(start > 0 ? { 'content-range': `bytes ${start}-${info.size - 1}/${info.size}` } : {}),
        });
        record.bytesServed = info.size - start;
        createReadStream(path, { start }).pipe(res);
      },
      () => {
        record.status = 404;
        res.writeHead(404).end();
      },
    );
  });
  const storagePort = options.redirectBlobs ? await listen(storage) : undefined;

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    const record: ProxiedRequest = {
      method: req.method ?? 'GET',
      path,
      range: req.headers.range,
      authorization: req.headers.authorization,
      status: 0,
      bytesServed: 0,
    };
    requests.push(record);
    const blob = /\/blobs\/(sha256:[0-9a-f]{64})$/.exec(path)?.[1];
    const upstream = httpRequest(
      { host: targetHost, port: Number(targetPort), path, method: req.method, headers: req.headers },
      (response) => {
        record.status = response.statusCode ?? 0;
        if (blob !== undefined && storagePort !== undefined && record.status === 200) {
          response.resume();
          record.status = 307;
          res.writeHead(307, {
            location: `http://127.0.0.1:${storagePort}/blob/${blob}?signature=s3cr3t-sig`,
          });
          res.end();
          return;
        }
        res.writeHead(record.status, response.headers);
        const cut = blob === undefined ? undefined : cuts.get(blob);
        if (cut === undefined || cut.times <= 0 || (record.status !== 200 && record.status !== 206)) {
          response.on('data', (chunk: Buffer) => {
            record.bytesServed += chunk.length;
          });
          response.pipe(res);
          return;
        }
        cut.times -= 1;
        response.on('data', (chunk: Buffer) => {
          const room = cut.afterBytes - record.bytesServed;
          if (room <= 0) return;
          const part = chunk.subarray(0, room);
          record.bytesServed += part.length;
          if (record.bytesServed < cut.afterBytes) {
            res.write(part);
            return;
          }
          response.destroy();
          // Break the connection mid-body once these bytes are handed to the kernel.
          res.write(part, () => setTimeout(() => res.socket?.destroy(), 20));
        });
      },
    );
    upstream.on('error', () => res.socket?.destroy());
    req.pipe(upstream);
  });
  const port = await listen(server);
  return {
    host: `127.0.0.1:${port}`,
    requests,
    storageRequests,
    cutBlob(digest, afterBytes, times = 1) {
      cuts.set(digest, { afterBytes, times });
    },
    async stop() {
      await close(server);
      if (storagePort !== undefined) await close(storage);
    },
  };
}

/** The podman flags that work on these machines (DESIGN.md section 7), with no network. */
export const PODMAN_RUN_OFFLINE = [
  'run',
  '--runtime',
  'runc',
  '--rm',
  '--network',
  'none',
  '--ulimit',
  'nofile=1024:1024',
  '--ulimit',
  'nproc=1024:1024',
] as const;
