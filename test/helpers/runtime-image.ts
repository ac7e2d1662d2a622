/**
 * Test fixture for the container path (test/e2e/container-runtime-image.test.ts): no
 * command ships it, so it lives with the tests. Packages our CPU runtime server (templates/runtime/server.mjs over node-llama-cpp, the
 * files collectRuntimeFiles gathers) as an OCI image, written as an OCI image layout
 * directory with no daemon and no base image:
 *
 * - layer 1: the shared libraries the Node binary and the prebuilt llama.cpp binaries
 *   load (found with `ldd`, stored at the paths the loader asks for, links resolved);
 * - layer 2: the Node binary at /apertus/runtime/bin/node;
 * - layer 3: server.mjs, supervisor.mjs and the node_modules closure under /apertus/runtime.
 *
 * Layers are uncompressed deterministic tars (src/core/layout/tar-writer.ts) and the config
 * has no timestamps, so the same inputs give the same image digest.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import { execa } from 'execa';
import { ApertusError } from '../../src/core/errors.js';
import { MEDIA_TYPE } from '../../src/core/layout/media-types.js';
import { planTarArchive, type TarSourceFile, tarArchiveChunks } from '../../src/core/layout/tar-writer.js';
import type { Descriptor } from '../../src/core/layout/types.js';
import type { RunOptions } from '../../src/core/progress.js';
import {
  collectRuntimeFiles,
  RUNTIME_PATHS,
  type RuntimeFiles,
} from '../../src/core/runtimes/runtime-files.js';

/** Where the runtime lives inside the image. */
export const RUNTIME_IMAGE_DIR = '/apertus/runtime';
/** The port the image's server listens on unless its args say otherwise. */
export const RUNTIME_IMAGE_PORT = 8080;

const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';

export interface RuntimeImage {
  /** The OCI image layout directory. */
  layout: string;
  /** The ref name in the layout's index.json. */
  tag: string;
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  entrypoint: string[];
  /** Total bytes of the layers. */
  size: number;
}

/** Absolute paths of the shared objects `ldd` says `file` loads, the dynamic loader included. */
export function parseLddOutput(output: string): string[] {
  const found: string[] = [];
  for (const line of output.split('\n')) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
    const arrow = /=>\s+(\/\S+)\s+\(/.exec(line)?.[1];
    const bare = /^\s*(\/\S+)\s+\(/.exec(line)?.[1];
    const file = arrow ?? bare;
    if (file !== undefined) found.push(file);
  }
  return found;
}

async function sharedLibraries(files: readonly string[], signal?: AbortSignal): Promise<string[]> {
  const libraries = new Set<string>();
  for (const file of files) {
    const result = await execa('ldd', [file], { reject: false, ...(signal ? { cancelSignal: signal } : {}) });
    if (result.exitCode !== 0) {
      // Not a dynamic ELF (a static one, or not ELF at all): nothing to carry.
      if (/not a dynamic executable/.test(`${result.stdout}${result.stderr}`)) continue;
      throw new ApertusError('runtime-image-ldd', `ldd ${file} failed: ${String(result.stderr).trim()}`, {
        kind: 'operation',
        hint: 'Build runtime images on a glibc Linux machine with ldd (libc-bin), as the bundled Node needs.',
      });
    }
    for (const library of parseLddOutput(String(result.stdout))) {
      // Libraries that ship in the tree itself (node-llama-cpp's) are already in layer 3.
      if (!files.some((f) => path.dirname(f) === path.dirname(library))) libraries.add(library);
    }
  }
  return [...libraries].sort();
}

/** Writes one layer into the layout's blob directory; returns its descriptor. */
async function writeLayer(
  blobDir: string,
  files: TarSourceFile[],
  describe: string,
  signal?: AbortSignal,
): Promise<Descriptor> {
  const plan = await planTarArchive(files, describe);
  const temp = path.join(blobDir, `.incoming-${process.pid}-${Date.now()}`);
  const hash = createHash('sha256');
  const out = createWriteStream(temp);
  try {
    for await (const chunk of tarArchiveChunks(plan, signal)) {
      hash.update(chunk);
      if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
    }
    out.end();
    await finished(out);
  } catch (error) {
    out.destroy();
    await rm(temp, { force: true });
    throw error;
  }
  const hex = hash.digest('hex');
  await rename(temp, path.join(blobDir, hex));
  return { mediaType: MEDIA_TYPE.tarLayer, digest: `sha256:${hex}`, size: plan.size };
}

async function writeBlob(blobDir: string, bytes: Buffer): Promise<{ digest: string; size: number }> {
  const hex = createHash('sha256').update(bytes).digest('hex');
  await writeFile(path.join(blobDir, hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
}

function inImage(relative: string): string {
  return path.posix.join(RUNTIME_IMAGE_DIR, relative).slice(1);
}

/**
 * Build the runtime image into `layoutDir` (created; an existing layout gains the image).
 * `runtime` defaults to collectRuntimeFiles(projectRoot).
 */
export async function buildRuntimeImage(
  options: RunOptions & { projectRoot: string; layoutDir: string; tag: string; runtime?: RuntimeFiles },
): Promise<RuntimeImage> {
  const { signal, onProgress } = options;
  const runtime = options.runtime ?? (await collectRuntimeFiles(options.projectRoot, { signal, onProgress }));
  onProgress?.({ step: 'runtime-image', status: 'start', detail: `runtime image ${options.tag}` });
  const blobDir = path.join(options.layoutDir, 'blobs', 'sha256');
  await mkdir(blobDir, { recursive: true });

  const elfLike = runtime.tree.filter((f) => /\.(so(\.\d+)*|node)$/.test(f.path)).map((f) => f.source);
  const libraries = await sharedLibraries([runtime.node.path, ...elfLike], signal);
  const libraryFiles: TarSourceFile[] = [];
  for (const library of libraries) {
    // The loader opens the path ldd printed; a link there is stored as the file it names.
    await stat(library);
    libraryFiles.push({ path: library.slice(1), source: library, mode: 0o755 });
  }
  const layers = [
    await writeLayer(blobDir, libraryFiles, 'runtime image: shared libraries', signal),
    await writeLayer(
      blobDir,
      [{ path: inImage(RUNTIME_PATHS.node), source: runtime.node.path, mode: 0o755 }],
      'runtime image: node',
      signal,
    ),
    await writeLayer(
      blobDir,
      runtime.tree.map((f) => ({ path: inImage(f.path), source: f.source, mode: f.mode })),
      'runtime image: server',
      signal,
    ),
  ];

  const entrypoint = [
    path.posix.join(RUNTIME_IMAGE_DIR, RUNTIME_PATHS.node),
    path.posix.join(RUNTIME_IMAGE_DIR, RUNTIME_PATHS.server),
  ];
  const llama = runtime.packages.find((p) => p.name === 'node-llama-cpp');
  const configBytes = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {
        Entrypoint: entrypoint,
        Cmd: ['--host', '0.0.0.0', '--port', String(RUNTIME_IMAGE_PORT), '--threads', '1'],
        Env: [`PATH=${RUNTIME_IMAGE_DIR}/bin:/usr/bin:/bin`, 'NODE_ENV=production'],
        WorkingDir: RUNTIME_IMAGE_DIR,
        ExposedPorts: { [`${RUNTIME_IMAGE_PORT}/tcp`]: {} },
        Labels: {
          'org.opencontainers.image.title': 'apertus llamacpp runtime',
          'org.opencontainers.image.description':
            'OpenAI-compatible server over node-llama-cpp; give it --model PATH --threads N',
          'dev.apertus.node.version': runtime.node.version,
          ...(llama ? { 'dev.apertus.node-llama-cpp.version': llama.version } : {}),
        },
      },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
    }),
  );
  const config = { mediaType: OCI_CONFIG, ...(await writeBlob(blobDir, configBytes)) };
  const manifestBytes = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPE.ociManifest, config, layers }),
  );
  const manifest: Descriptor = {
    mediaType: MEDIA_TYPE.ociManifest,
    ...(await writeBlob(blobDir, manifestBytes)),
  };

  await writeFile(path.join(options.layoutDir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const indexPath = path.join(options.layoutDir, 'index.json');
  const existing = await readFile(indexPath, 'utf8')
    .then((text) => JSON.parse(text) as { manifests?: Descriptor[] })
    .catch(() => ({ manifests: [] as Descriptor[] }));
  const others = (existing.manifests ?? []).filter(
    (m) => m.annotations?.['org.opencontainers.image.ref.name'] !== options.tag,
  );
  await writeFile(
    indexPath,
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE.ociIndex,
      manifests: [
        ...others,
        {
          ...manifest,
          platform: { architecture: 'amd64', os: 'linux' },
          annotations: { 'org.opencontainers.image.ref.name': options.tag },
        },
      ],
    }),
  );
  const size = layers.reduce((sum, l) => sum + l.size, 0);
  onProgress?.({
    step: 'runtime-image',
    status: 'ok',
    detail: `${manifest.digest}: ${libraries.length} libraries, node ${runtime.node.version}, ${runtime.tree.length} files, ${(size / 1e6).toFixed(1)} MB`,
  });
  return { layout: options.layoutDir, tag: options.tag, manifest, config, layers, entrypoint, size };
}
