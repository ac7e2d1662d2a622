/**
 * The apertus CLI a bundle carries under apertus/ (DESIGN.md section 2, journey 3), so
 * that `tar -xf BUNDLE.tar apertus/` gives the operator inside the air gap a working
 * installer: a launcher, the Node binary this CLI runs on, and the CLI itself (its
 * package.json, bin/, dist/, templates/ and the node_modules closure of its dependencies).
 *
 * node-llama-cpp and usearch stay out: the CLI never loads them (the runtime component carries them for
 * the services), and bundling, which collects it, is work for the connected side.
 */
import { readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { ApertusError } from '../errors.js';
import { CLI_PATHS } from '../layout/names.js';
import { collectPackageClosure, listTreeFiles, type PackageFile } from './package-closure.js';

export interface CliFiles {
  /** Files under apertus/, paths relative to it, sorted. */
  files: PackageFile[];
  bytes: number;
  /** The CLI's own version and the Node version it runs on. */
  version: string;
  node: string;
}

/** Dependencies of the CLI that only the runtime (the services) loads. */
const RUNTIME_ONLY = (name: string) =>
  name === 'node-llama-cpp' || name.startsWith('@node-llama-cpp/') || name === 'usearch';

export async function collectCliFiles(projectRoot: string, signal?: AbortSignal): Promise<CliFiles> {
  const root = path.resolve(projectRoot);
  const manifest = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')) as {
    version?: string;
    dependencies?: Record<string, string>;
  };
  const closure = await collectPackageClosure({
    root,
    entries: Object.keys(manifest.dependencies ?? {}).filter((name) => !RUNTIME_ONLY(name)),
    followOptional: (dep) => (RUNTIME_ONLY(dep) ? 'skip' : 'if-installed'),
    installHint: 'Run `npm ci` in the apertus checkout, then bundle again (or pass --no-cli).',
    signal,
  });
  const own: PackageFile[] = [];
  for (const dir of ['bin', 'dist', 'templates']) {
    const found = await listTreeFiles(path.join(root, dir), root, signal).catch((error: unknown) => {
      throw new ApertusError(
        'cli-incomplete',
        `${path.join(root, dir)} cannot be read: ${(error as Error).message}`,
        {
          hint: 'Run `npm run build` in the apertus checkout (dist/ is its output), or pass --no-cli.',
          kind: 'operation',
        },
      );
    });
    // dist/bench is the benchmark, not the CLI.
    own.push(...found.filter((f) => !f.path.startsWith('dist/bench/')));
  }
  own.push(await fileAt(root, 'package.json'));
  const launcher = path.join(root, 'templates', 'cli', 'apertus');
  const node = await realpath(process.execPath);
  const files: PackageFile[] = [
    { path: CLI_PATHS.launcher, source: launcher, mode: 0o755, size: (await stat(launcher)).size },
    { path: CLI_PATHS.node, source: node, mode: 0o755, size: (await stat(node)).size },
    ...[...own, ...closure.files].map((f) => ({ ...f, path: `${CLI_PATHS.cliDir}/${f.path}` })),
  ];
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return {
    files,
    bytes: files.reduce((sum, f) => sum + f.size, 0),
    version: manifest.version ?? '0.0.0',
    node: process.version,
  };
}

async function fileAt(root: string, relative: string): Promise<PackageFile> {
  const source = path.join(root, relative);
  const info = await stat(source);
  return { path: relative, source, mode: info.mode & 0o111 ? 0o755 : 0o644, size: info.size };
}
