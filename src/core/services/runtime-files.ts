/**
 * What the `runtime` component of a bundle carries so an air-gapped host needs nothing of
 * ours beyond POSIX tools: the Node binary (its own layer, as it is large and changes on
 * its own schedule) and one tree layer with server.mjs, supervisor.mjs and the
 * node_modules closure server.mjs loads at run time.
 *
 * The closure follows package.json dependencies from node-llama-cpp, resolving the way
 * Node does (nearest node_modules upwards). Of node-llama-cpp's prebuilt binaries only
 * the target's CPU package travels; CUDA, Vulkan and other platforms' packages are left
 * out by name. Files that Node never loads (type declarations, source maps, TypeScript
 * sources) and node-llama-cpp's source-build inputs (read only when it compiles llama.cpp,
 * which `build: 'never'` in server.mjs rules out) are left out too; the e2e test
 * runtime-server.test.ts runs the server from a copy of exactly this set.
 */
import { lstat, readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { ApertusError } from '../errors.js';
import type { RunOptions } from '../progress.js';
import { collectRagFiles } from './rag-service.js';

/** One file of the tree layer; the shape planTarArchive takes (src/core/layout/tar-writer.ts). */
export interface RuntimeTreeFile {
  /** Path inside the runtime directory on the host (and the layer), '/'-separated. */
  path: string;
  /** Absolute path on this machine. */
  source: string;
  /** 0o755 for executables, 0o644 otherwise, whatever the local umask made of them. */
  mode: 0o644 | 0o755;
  size: number;
}

export interface RuntimePackage {
  name: string;
  version: string;
  license: string | null;
  /** Where the package lands inside the runtime directory. */
  path: string;
}

export interface RuntimeFiles {
  /** The Node binary that runs server.mjs and supervisor.mjs; its own layer, at RUNTIME_PATHS.node. */
  node: { path: string; mode: 0o755; size: number; version: string };
  /** The files of one tar layer, sorted by path: no directories, no links. */
  tree: RuntimeTreeFile[];
  treeBytes: number;
  /** Every package in the closure, sorted by path: for provenance and licences. */
  packages: RuntimePackage[];
  /** Node plus the tree. */
  totalBytes: number;
}

/** Paths inside the runtime directory, relative to it. */
export const RUNTIME_PATHS = {
  node: 'bin/node',
  server: 'server.mjs',
  supervisor: 'supervisor.mjs',
} as const;

/** The prebuilt-binary packages node-llama-cpp lists; exactly one is wanted per target. */
const PREBUILT_SCOPE = '@node-llama-cpp/';

export type RuntimePlatform = 'linux-x64';

/** Never loaded by Node 20: TypeScript sources and declarations, source maps of scripts. */
const UNLOADED_FILE = /\.(?:[cm]?ts|(?:[cm]?js|[cm]?ts)\.map)$/;

/**
 * node-llama-cpp ships what it needs to build llama.cpp from source; with build: 'never'
 * and skipDownload it never reads these (they are 34 MB, most of it a git bundle of the
 * llama.cpp sources).
 */
const UNUSED_PACKAGE_PATHS: Record<string, readonly string[]> = {
  'node-llama-cpp': [
    'llama/gitRelease.bundle',
    'llama/addon',
    'llama/cmake',
    'llama/CMakeLists.txt',
    'llama/patches',
    'llama/profiles',
    'llama/toolchains',
    'llama/xpack',
    // Project scaffolding for `node-llama-cpp init`.
    'templates',
    // Pointers to the prebuilt packages, read only by the CLI.
    'bins',
  ],
};

interface PackageJson {
  name?: string;
  version?: string;
  license?: unknown;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

async function readPackageJson(dir: string): Promise<PackageJson> {
  return JSON.parse(await readFile(path.join(dir, 'package.json'), 'utf8')) as PackageJson;
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

/** Node's lookup: `<dir>/node_modules/<name>`, then each enclosing package's, up to the root. */
async function resolvePackageDir(fromDir: string, name: string, nodeModules: string): Promise<string | null> {
  let dir = fromDir;
  for (;;) {
    const candidate = path.join(dir, 'node_modules', name);
    if (await exists(path.join(candidate, 'package.json'))) return candidate;
    if (dir === path.dirname(nodeModules) || !dir.startsWith(nodeModules)) return null;
    // Up to the package that contains this node_modules (skipping a scope folder).
    dir = path.dirname(dir);
    while (path.basename(dir) === 'node_modules' || path.basename(dir).startsWith('@'))
      dir = path.dirname(dir);
  }
}

function toPosix(relative: string): string {
  return relative.split(path.sep).join('/');
}

function normalisedMode(mode: number): 0o644 | 0o755 {
  return mode & 0o111 ? 0o755 : 0o644;
}

async function listPackageFiles(
  packageDir: string,
  packageName: string,
  projectRoot: string,
  signal: AbortSignal | undefined,
): Promise<RuntimeTreeFile[]> {
  const skipped = new Set((UNUSED_PACKAGE_PATHS[packageName] ?? []).map((p) => path.join(packageDir, p)));
  const files: RuntimeTreeFile[] = [];
  const walk = async (dir: string): Promise<void> => {
    signal?.throwIfAborted();
    const entries = await readdir(dir, { withFileTypes: true });
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (skipped.has(full)) continue;
      // Nested packages are visited as dependencies in their own right, or not at all.
      if (entry.isDirectory() && entry.name === 'node_modules') continue;
      if (entry.isDirectory()) {
        await walk(full);
        continue;
      }
      if (UNLOADED_FILE.test(entry.name)) continue;
      // A link inside a package is stored as the file it points to: the layer has no links.
      const info = entry.isSymbolicLink() ? await stat(full) : await lstat(full);
      if (info.isDirectory()) {
        throw new ApertusError(
          'runtime-linked-directory',
          `${full} links to a directory; the runtime layer cannot carry directory links`,
          { hint: 'Reinstall node_modules without links (npm ci), then bundle again.', kind: 'operation' },
        );
      }
      if (!info.isFile()) continue;
      files.push({
        path: toPosix(path.relative(projectRoot, full)),
        source: full,
        mode: normalisedMode(info.mode),
        size: info.size,
      });
    }
  };
  await walk(packageDir);
  return files;
}

/**
 * Collect the runtime component's files from a project checkout (or the installed CLI),
 * where `templates/runtime/` and `node_modules/` live.
 */
export async function collectRuntimeFiles(
  projectRoot: string,
  options: RunOptions & { platform?: RuntimePlatform } = {},
): Promise<RuntimeFiles> {
  const { signal, onProgress } = options;
  const platform = options.platform ?? 'linux-x64';
  const root = path.resolve(projectRoot);
  const nodeModules = path.join(root, 'node_modules');
  onProgress?.({ step: 'runtime.collect', status: 'start', detail: `runtime files for ${platform}` });
  // The Node binary and the installed native packages are this machine's own.
  const here = `${process.platform}-${process.arch}`;
  if (here !== platform) {
    throw new ApertusError(
      'runtime-platform-mismatch',
      `the runtime for ${platform} cannot be collected on ${here}`,
      {
        hint: `Build bundles with a llamacpp service on a ${platform} machine (its Node binary and npm-installed llama.cpp binaries are what ships).`,
      },
    );
  }

  const wantedPrebuilt = `${PREBUILT_SCOPE}${platform}`;
  const packages: RuntimePackage[] = [];
  const files: RuntimeTreeFile[] = [];
  const visited = new Set<string>();

  const visit = async (packageDir: string): Promise<void> => {
    const real = await realpath(packageDir);
    if (visited.has(real)) return;
    visited.add(real);
    const manifest = await readPackageJson(packageDir);
    const name = manifest.name ?? path.basename(packageDir);
    packages.push({
      name,
      version: manifest.version ?? '0.0.0',
      license: typeof manifest.license === 'string' ? manifest.license : null,
      path: toPosix(path.relative(root, packageDir)),
    });
    files.push(...(await listPackageFiles(packageDir, name, root, signal)));

    const dependencies = Object.keys(manifest.dependencies ?? {}).map((dep) => ({ dep, optional: false }));
    const optional = Object.keys(manifest.optionalDependencies ?? {})
      .filter((dep) => !dep.startsWith(PREBUILT_SCOPE) || dep === wantedPrebuilt)
      .map((dep) => ({ dep, optional: true }));
    for (const { dep, optional: isOptional } of [...dependencies, ...optional]) {
      const dir = await resolvePackageDir(packageDir, dep, nodeModules);
      if (dir !== null) {
        await visit(dir);
      } else if (!isOptional || dep === wantedPrebuilt) {
        throw new ApertusError(
          'runtime-missing-package',
          `${name} needs ${dep}, which is not installed in ${nodeModules}`,
          {
            hint: 'Run `npm ci` in the apertus checkout (it installs node-llama-cpp and its prebuilt binaries), then bundle again.',
          },
        );
      }
    }
  };

  const serverDir = await resolvePackageDir(root, 'node-llama-cpp', nodeModules);
  if (serverDir === null) {
    throw new ApertusError('runtime-missing-package', `node-llama-cpp is not installed in ${nodeModules}`, {
      hint: 'Run `npm ci` in the apertus checkout, then bundle again.',
    });
  }
  await visit(serverDir);
  if (!packages.some((p) => p.name === wantedPrebuilt)) {
    throw new ApertusError(
      'runtime-missing-package',
      `the prebuilt llama.cpp binaries ${wantedPrebuilt} are not installed`,
      {
        hint: `Run \`npm ci\` on a ${platform} machine so npm installs ${wantedPrebuilt}, then bundle again.`,
      },
    );
  }

  for (const script of [RUNTIME_PATHS.server, RUNTIME_PATHS.supervisor]) {
    const from = path.join(root, 'templates', 'runtime', script);
    const info = await stat(from).catch(() => null);
    if (info === null) {
      throw new ApertusError('runtime-missing-template', `${from} is missing`, {
        hint: 'The apertus installation is incomplete; reinstall it.',
        kind: 'operation',
      });
    }
    files.push({ path: script, source: from, mode: 0o644, size: info.size });
  }
  // The RAG service needs no npm package: its modules ride in the same tree, under rag/.
  files.push(...(await collectRagFiles(root)));

  // The binary this process runs on is the one the closure was installed (and tested) with.
  const nodePath = await realpath(process.execPath);
  const nodeInfo = await stat(nodePath);
  const node = { path: nodePath, mode: 0o755 as const, size: nodeInfo.size, version: process.version };

  const byPath = (a: { path: string }, b: { path: string }): number =>
    a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
  files.sort(byPath);
  packages.sort(byPath);
  const treeBytes = files.reduce((sum, file) => sum + file.size, 0);
  onProgress?.({
    step: 'runtime.collect',
    status: 'ok',
    detail: `${files.length} files, ${packages.length} packages, ${(treeBytes / 1e6).toFixed(1)} MB plus Node ${(node.size / 1e6).toFixed(1)} MB`,
  });
  return { node, tree: files, treeBytes, packages, totalBytes: treeBytes + node.size };
}
