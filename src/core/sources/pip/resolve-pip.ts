/**
 * The `pip:` source: a requirements file (relative to the recipe) resolved by pip into a
 * wheelhouse for the target's Python and platform, locked by hash.
 *
 *   <cacheDir>/pip/<index key>/wheels/<file>.whl   pip's --dest: every wheel ever fetched
 *                                                 from that index, reused by later runs
 *   <cacheDir>/pip/locks/<hex>.lock                the lock files, named by their sha256
 *
 * Resolution needs the wheels themselves (pip reads each one's metadata to find its
 * dependencies), so it downloads them; fetching then only re-checks them against the lock.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ApertusError } from '../../errors.js';
import { noProgress } from '../../progress.js';
import type { ResolvedFile, ResolvedSource, SourceContext } from '../types.js';
import { DEFAULT_INDEX_URL, indexUrlSecrets, redactIndexUrl } from './index-url.js';
import { pipDownload } from './pip-download.js';
import {
  formatRequirementsLock,
  requirementsIndexOptions,
  requirementsPinHashes,
} from './requirements-lock.js';
import { normaliseProjectName, parseWheelFileName } from './wheel-filename.js';

export const DEFAULT_PYTHON_VERSION = '3.11';
/** glibc x86_64 wheels: manylinux2014 is manylinux_2_17; _2_28 covers newer builds (RHEL 8+, Debian 10+). */
export const DEFAULT_PLATFORMS: readonly string[] = [
  'manylinux2014_x86_64',
  'manylinux_2_17_x86_64',
  'manylinux_2_28_x86_64',
];
/** Where the wheels and the lock sit inside a wheels component. */
export const WHEELS_DIR = 'wheels';
export const LOCK_FILE = 'requirements.lock';

export interface PipSourceOptions {
  /** The recipe's directory: the requirements path is relative to it. */
  recipeDir: string;
  python?: string | undefined;
  platforms?: string[] | undefined;
  /** May carry credentials; else PIP_INDEX_URL from ctx.env, else PyPI. */
  indexUrl?: string | undefined;
}

export interface PipWheel {
  fileName: string;
  distribution: string;
  version: string;
  size: number;
  digest: string;
  localPath: string;
}

export interface PipResolvedSource extends ResolvedSource {
  /** The index without credentials. */
  index: string;
  python: string;
  platforms: string[];
  wheels: PipWheel[];
  lock: { localPath: string; digest: string; size: number };
  /** Wheels pip downloaded in this run (the rest came from the cache). */
  downloaded: string[];
}

export async function resolvePip(
  source: string,
  options: PipSourceOptions,
  ctx: SourceContext,
): Promise<PipResolvedSource> {
  const onProgress = ctx.onProgress ?? noProgress;
  if (!source.startsWith('pip:') || source.length === 'pip:'.length) {
    throw new ApertusError('pip-source-invalid', `"${source}" is not a pip: source.`, {
      hint: 'Write pip:PATH, with PATH a requirements file relative to the recipe directory.',
    });
  }
  const requirementsFile = path.resolve(options.recipeDir, source.slice('pip:'.length));
  const requirements = await readFile(requirementsFile, 'utf8').catch((error: unknown) => {
    throw new ApertusError('source-not-found', `${source}: cannot read ${requirementsFile}.`, {
      hint: `Paths in pip: sources are relative to ${options.recipeDir}.`,
      cause: error,
    });
  });
  const indexOptions = requirementsIndexOptions(requirements);
  if (indexOptions.length > 0) {
    throw new ApertusError(
      'pip-requirements-index-option',
      `${requirementsFile} sets ${indexOptions.join(', ')}; the index of a pip: source is set by the recipe.`,
      {
        hint: 'Remove those lines and set indexUrl on the component (or PIP_INDEX_URL): credentials in it are kept out of the bundle only there.',
      },
    );
  }

  const python = options.python ?? DEFAULT_PYTHON_VERSION;
  const platforms = options.platforms ?? [...DEFAULT_PLATFORMS];
  const indexUrl = options.indexUrl ?? ctx.env.PIP_INDEX_URL ?? DEFAULT_INDEX_URL;
  const index = redactIndexUrl(indexUrl);
  const secrets = indexUrlSecrets(indexUrl);
  const requireHashes = requirementsPinHashes(requirements);

  // One wheel directory per index: a file name on one index says nothing about another's bytes.
  const indexKey = createHash('sha256').update(index).digest('hex').slice(0, 16);
  const destDir = path.join(ctx.cacheDir, 'pip', indexKey, WHEELS_DIR);
  await mkdir(destDir, { recursive: true });

  onProgress({ step: 'pip', status: 'start', detail: `pip download ${source} for CPython ${python}` });
  const downloaded = await pipDownload({
    python,
    platforms,
    indexUrl,
    secrets,
    requirementsFile,
    requireHashes,
    destDir,
    signal: ctx.signal,
  });

  const wheels: PipWheel[] = [];
  for (const fileName of [...downloaded.wheels].sort()) {
    const parsed = parseWheelFileName(fileName);
    if (!parsed) {
      throw new ApertusError(
        'pip-wheel-name-invalid',
        `pip saved ${fileName}, which is not a wheel file name.`,
        {
          kind: 'operation',
          hint: 'Only binary wheels (PEP 427 names) can be bundled; check the index serves proper wheel files.',
        },
      );
    }
    const localPath = path.join(destDir, fileName);
    const bytes = await readFile(localPath);
    wheels.push({
      fileName,
      distribution: parsed.distribution,
      version: parsed.version,
      size: bytes.length,
      digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
      localPath,
    });
  }
  const duplicate = wheels.find((w, i) => wheels.findIndex((o) => sameProject(o, w)) !== i);
  if (duplicate) {
    throw new ApertusError(
      'pip-wheel-duplicate',
      `pip chose two wheels of ${duplicate.distribution}; a lock pins one file per package.`,
      { kind: 'operation', hint: 'Narrow the platforms: list of the component to one family of tags.' },
    );
  }

  const lockText = formatRequirementsLock(wheels, { python, platforms, index });
  const lockDigest = `sha256:${createHash('sha256').update(lockText).digest('hex')}`;
  const lockDir = path.join(ctx.cacheDir, 'pip', 'locks');
  await mkdir(lockDir, { recursive: true });
  const lockPath = path.join(lockDir, `${lockDigest.slice('sha256:'.length)}.lock`);
  await writeFile(lockPath, lockText);
  onProgress({
    step: 'pip',
    status: 'ok',
    detail: `${wheels.length} wheels, ${downloaded.downloaded.length} downloaded`,
  });

  const files: ResolvedFile[] = [
    { path: LOCK_FILE, size: Buffer.byteLength(lockText), digest: lockDigest },
    ...wheels.map((w) => ({ path: `${WHEELS_DIR}/${w.fileName}`, size: w.size, digest: w.digest })),
  ];
  return {
    source,
    pinned: `${source}@${lockDigest}`,
    revision: lockDigest,
    files,
    index,
    python,
    platforms,
    wheels,
    lock: { localPath: lockPath, digest: lockDigest, size: Buffer.byteLength(lockText) },
    downloaded: downloaded.downloaded,
  };
}

function sameProject(a: PipWheel, b: PipWheel): boolean {
  return normaliseProjectName(a.distribution) === normaliseProjectName(b.distribution);
}
