/**
 * A Python package index on 127.0.0.1 for the pip source tests: the PEP 503 "simple"
 * repository API (a project list, one page of links per project with `#sha256=` fragments)
 * over node:http, serving real wheels that the test builds with python3's zipfile module
 * (PEP 427: the package, METADATA, WHEEL and RECORD with each file's hash). It can demand
 * HTTP basic auth, serve different bytes than it advertises for a file, and counts the
 * wheel bytes it served, so tests can assert what pip downloaded.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { execa } from 'execa';

export interface WheelSpec {
  /** Distribution name as published ('apertus-hello'). */
  name: string;
  version: string;
  /** Compatibility tag triple, e.g. 'py3-none-any' or 'cp311-cp311-manylinux2014_x86_64'. */
  tag: string;
  /** Top-level module name and its __init__.py source. */
  module: string;
  source: string;
  requires?: string[];
}

export interface BuiltWheel {
  spec: WheelSpec;
  fileName: string;
  path: string;
  sha256: string;
  bytes: Buffer;
}

// Builds one wheel from a JSON spec on stdin; prints its file name. Deterministic: fixed timestamps.
const BUILD_WHEEL = `
import base64, hashlib, json, sys, zipfile
spec = json.load(sys.stdin)
dist = spec['name'].replace('-', '_')
info = f"{dist}-{spec['version']}.dist-info"
files = {
  f"{spec['module']}/__init__.py": spec['source'].encode(),
  f"{info}/METADATA": ("Metadata-Version: 2.1\\nName: %s\\nVersion: %s\\n%s" % (spec['name'], spec['version'], ''.join('Requires-Dist: %s\\n' % r for r in spec.get('requires', [])))).encode(),
  f"{info}/WHEEL": ("Wheel-Version: 1.0\\nGenerator: apertus-test\\nRoot-Is-Purelib: %s\\nTag: %s\\n" % ('true' if spec['tag'].endswith('-none-any') else 'false', spec['tag'])).encode(),
}
record = ''
for name, data in files.items():
  digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
  record += f"{name},sha256={digest},{len(data)}\\n"
record += f"{info}/RECORD,,\\n"
files[f"{info}/RECORD"] = record.encode()
name = f"{dist}-{spec['version']}-{spec['tag']}.whl"
with zipfile.ZipFile(f"{spec['dir']}/{name}", 'w', zipfile.ZIP_DEFLATED) as z:
  for path, data in files.items():
    z.writestr(zipfile.ZipInfo(path, (2020, 1, 1, 0, 0, 0)), data)
print(name)
`;

export async function buildWheel(dir: string, spec: WheelSpec): Promise<BuiltWheel> {
  const { stdout } = await execa('python3', ['-c', BUILD_WHEEL], {
    input: JSON.stringify({ ...spec, dir }),
  });
  const fileName = stdout.trim();
  const file = path.join(dir, fileName);
  const bytes = await readFile(file);
  return { spec, fileName, path: file, sha256: createHash('sha256').update(bytes).digest('hex'), bytes };
}

export interface PackageIndex {
  /** `http://127.0.0.1:PORT/simple/` (without credentials). */
  url: string;
  /** The same with `user:token@` in it, when the index demands auth. */
  authUrl: string;
  /** Wheel bytes served since start or the last resetCounters(). */
  wheelBytesServed(): number;
  /** Every request path, in order. */
  requests: string[];
  /** Serve these bytes for a file name, while the project page still advertises the original hash. */
  tamper(fileName: string, bytes: Buffer): void;
  resetCounters(): void;
  stop(): Promise<void>;
}

export async function startPackageIndex(
  wheels: BuiltWheel[],
  options: { user?: string; token?: string } = {},
): Promise<PackageIndex> {
  const byProject = new Map<string, BuiltWheel[]>();
  for (const wheel of wheels) {
    const project = normalise(wheel.spec.name);
    byProject.set(project, [...(byProject.get(project) ?? []), wheel]);
  }
  const tampered = new Map<string, Buffer>();
  const requests: string[] = [];
  let served = 0;
  const expectedAuth =
    options.token === undefined
      ? undefined
      : `Basic ${Buffer.from(`${options.user ?? 'user'}:${options.token}`).toString('base64')}`;

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    requests.push(url.pathname);
    if (expectedAuth !== undefined && req.headers.authorization !== expectedAuth) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="test index"' });
      res.end('unauthorized');
      return;
    }
    const html = (body: string) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<!DOCTYPE html><html><body>\n${body}</body></html>\n`);
    };
    if (url.pathname === '/simple/') {
      html([...byProject.keys()].map((p) => `<a href="/simple/${p}/">${p}</a>\n`).join(''));
      return;
    }
    const project = /^\/simple\/([^/]+)\/$/.exec(url.pathname)?.[1];
    if (project !== undefined) {
      const list = byProject.get(normalise(project));
      if (!list) {
        res.writeHead(404).end('not found');
        return;
      }
      html(list.map((w) => `<a href="/files/${w.fileName}#sha256=${w.sha256}">${w.fileName}</a>\n`).join(''));
      return;
    }
    const fileName = /^\/files\/([^/]+)$/.exec(url.pathname)?.[1];
    const wheel = wheels.find((w) => w.fileName === fileName);
    if (fileName === undefined || wheel === undefined) {
      res.writeHead(404).end('not found');
      return;
    }
    const bytes = tampered.get(fileName) ?? wheel.bytes;
    served += bytes.length;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length });
    res.end(bytes);
  };

  const server: Server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const userinfo = options.token === undefined ? '' : `${options.user ?? 'user'}:${options.token}@`;
  return {
    url: `http://127.0.0.1:${port}/simple/`,
    authUrl: `http://${userinfo}127.0.0.1:${port}/simple/`,
    wheelBytesServed: () => served,
    requests,
    tamper: (name, bytes) => tampered.set(name, bytes),
    resetCounters: () => {
      served = 0;
      requests.length = 0;
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** PEP 503 name normalisation. */
function normalise(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

/** Whether python3 with pip and venv is on this machine (the pip source and its tests need it). */
export async function pythonRequirement(): Promise<{ ok: boolean; why: string }> {
  const result = await execa('python3', ['-c', 'import pip, venv, zipfile'], { reject: false });
  return result.exitCode === 0
    ? { ok: true, why: '' }
    : { ok: false, why: '(needs python3 with pip and venv: apt-get install python3-pip python3-venv)' };
}
