/**
 * What the `runtime` component of a bundle carries so an air-gapped host needs nothing of
 * ours beyond POSIX tools: the Node binary (its own layer, as it is large and changes on
 * its own schedule) and one tree layer with server.mjs (and its modules), supervisor.mjs and
 * the node_modules closure server.mjs and the RAG service load at run time.
 *
 * The closure follows package.json dependencies from node-llama-cpp and the RAG service's
 * packages (RAG_PACKAGES in rag/rag-service.ts), resolving the way
 * Node does (nearest node_modules upwards). Of node-llama-cpp's prebuilt binaries only
 * the target's CPU package travels; CUDA, Vulkan and other platforms' packages are left
 * out by name. Files that Node never loads (type declarations, source maps, TypeScript
 * sources) and node-llama-cpp's source-build inputs (read only when it compiles llama.cpp,
 * which `build: 'never'` in server.mjs rules out) are left out too; the e2e test
 * runtime-server.test.ts runs the server from a copy of exactly this set.
 */
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import posixPath from 'node:path/posix';
import { type ClosurePackage, collectPackageClosure, type PackageFile } from '../bundle/package-closure.js';
import { ApertusError } from '../errors.js';
import type { RunOptions } from '../progress.js';
import { collectGatewayFiles } from './gateway/gateway-service.js';
import { collectRagFiles, RAG_PACKAGES } from './rag/rag-service.js';

/** One file of the tree layer (path inside the runtime directory); the shape planTarArchive takes. */
export type RuntimeTreeFile = PackageFile;

/** A package of the closure; its path is where it lands inside the runtime directory. */
export type RuntimePackage = ClosurePackage;

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

/** Modules server.mjs imports, next to it in templates/runtime/ and in the runtime directory. */
const SERVER_MODULES = ['openai-request.mjs', 'runtime-metrics.mjs'] as const;

/**
 * For the operator's Prometheus and Grafana: a scrape config for the runtime's and the
 * RAG service's /metrics and a dashboard over them, from templates/monitoring/ to
 * `monitoring/` in the runtime directory of every release.
 */
export const MONITORING_FILES = ['prometheus-scrape.yml', 'grafana-dashboard.json'] as const;

/** The runtime component's files inside a release on the host. */
export function runtimePaths(releaseDir: string): { node: string; supervisor: string; dir: string } {
  const dir = posixPath.join(releaseDir, 'runtime');
  return {
    dir,
    node: posixPath.join(dir, RUNTIME_PATHS.node),
    supervisor: posixPath.join(dir, RUNTIME_PATHS.supervisor),
  };
}

/** The prebuilt-binary packages node-llama-cpp lists; exactly one is wanted per target. */
const PREBUILT_SCOPE = '@node-llama-cpp/';

export type RuntimePlatform = 'linux-x64';

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
  // The RAG store's ANN index (templates/rag/ann-index.mjs) loads the CommonJS build and the
  // linux-x64 prebuilt binary; its C/C++ sources and other platforms' binaries stay out.
  usearch: [
    'binding.gyp',
    'c',
    'cpp',
    'cmake',
    'include',
    'numkong',
    'javascript/lib.cpp',
    'prebuilds/darwin-arm64+x64',
    'prebuilds/linux-arm64',
  ],
};

/** A file of templates/<dir>/ as a tree file at `target`; its absence means a broken installation. */
async function templateFile(
  root: string,
  dir: string,
  name: string,
  target: string,
): Promise<RuntimeTreeFile> {
  const from = path.join(root, 'templates', dir, name);
  const info = await stat(from).catch(() => null);
  if (info === null) {
    throw new ApertusError('runtime-missing-template', `${from} is missing`, {
      hint: 'The apertus installation is incomplete; reinstall it.',
      kind: 'operation',
    });
  }
  return { path: target, source: from, mode: 0o644, size: info.size };
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
  const closure = await collectPackageClosure({
    root,
    // prom-client serves /metrics of the runtime server and the RAG service; the RAG
    // service's own packages (under rag/, which resolves from this same node_modules) too.
    entries: ['node-llama-cpp', 'prom-client', ...RAG_PACKAGES],
    // Of the prebuilt binaries only the target's CPU package: CUDA, Vulkan and other platforms' stay out.
    followOptional: (dep) =>
      !dep.startsWith(PREBUILT_SCOPE) ? 'if-installed' : dep === wantedPrebuilt ? 'required' : 'skip',
    unusedPaths: UNUSED_PACKAGE_PATHS,
    installHint:
      'Run `npm ci` in the apertus checkout (it installs node-llama-cpp and its prebuilt binaries), then bundle again.',
    signal,
  });
  const packages: RuntimePackage[] = closure.packages;
  const files: RuntimeTreeFile[] = closure.files;
  if (!packages.some((p) => p.name === wantedPrebuilt)) {
    throw new ApertusError(
      'runtime-missing-package',
      `the prebuilt llama.cpp binaries ${wantedPrebuilt} are not installed`,
      {
        hint: `Run \`npm ci\` on a ${platform} machine so npm installs ${wantedPrebuilt}, then bundle again.`,
      },
    );
  }

  for (const script of [RUNTIME_PATHS.server, RUNTIME_PATHS.supervisor, ...SERVER_MODULES]) {
    files.push(await templateFile(root, 'runtime', script, script));
  }
  for (const name of MONITORING_FILES) {
    files.push(await templateFile(root, 'monitoring', name, `monitoring/${name}`));
  }
  // The RAG service's modules ride in the same tree, under rag/ (its packages are in the closure above).
  files.push(...(await collectRagFiles(root)));
  // The gateway likewise, under gateway/; it imports rag/audit-log.mjs for its access log.
  files.push(...(await collectGatewayFiles(root)));

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
