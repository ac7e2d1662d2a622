/**
 * The files of an npm package closure, as Node would load them: package.json dependencies
 * (and the optional ones the caller wants) followed from entry packages, resolved the way
 * Node does (nearest node_modules upwards), each package's files listed without what Node
 * never loads (type declarations, source maps, TypeScript sources). The runtime component
 * and the CLI a bundle carries under apertus/ are both made of such closures.
 */
import { lstat, readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { ApertusError } from '../errors.js';

/** One file to ship: where it goes (relative, '/'-separated) and where it is on this machine. */
export interface PackageFile {
  path: string;
  source: string;
  /** 0o755 for executables, 0o644 otherwise, whatever the local umask made of them. */
  mode: 0o644 | 0o755;
  size: number;
}

export interface ClosurePackage {
  name: string;
  version: string;
  license: string | null;
  /** Where the package lies relative to the project root. */
  path: string;
}

export interface PackageClosure {
  packages: ClosurePackage[];
  files: PackageFile[];
}

export interface ClosureOptions {
  /** The project whose node_modules holds the closure; file paths are relative to it. */
  root: string;
  /** Packages to start from. */
  entries: readonly string[];
  /** Which optional dependencies to follow; default: those installed. */
  followOptional?: (dependency: string) => 'required' | 'if-installed' | 'skip';
  /** Per package name, paths inside the package that are never loaded. */
  unusedPaths?: Readonly<Record<string, readonly string[]>>;
  /** Said in the error when a package is missing. */
  installHint: string;
  signal?: AbortSignal | undefined;
}

export async function collectPackageClosure(options: ClosureOptions): Promise<PackageClosure> {
  const { signal } = options;
  const root = path.resolve(options.root);
  const nodeModules = path.join(root, 'node_modules');
  const followOptional = options.followOptional ?? (() => 'if-installed' as const);
  const packages: ClosurePackage[] = [];
  const files: PackageFile[] = [];
  const visited = new Set<string>();
  const missing = (needer: string, dep: string) =>
    new ApertusError(
      'runtime-missing-package',
      `${needer} needs ${dep}, which is not installed in ${nodeModules}`,
      {
        hint: options.installHint,
      },
    );

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
    files.push(...(await listPackageFiles(packageDir, options.unusedPaths?.[name] ?? [], root, signal)));

    const dependencies = Object.keys(manifest.dependencies ?? {}).map((dep) => ({
      dep,
      want: 'required' as const,
    }));
    const optional = Object.keys(manifest.optionalDependencies ?? {})
      .map((dep) => ({ dep, want: followOptional(dep) }))
      .filter((d) => d.want !== 'skip');
    for (const { dep, want } of [...dependencies, ...optional]) {
      const dir = await resolvePackageDir(packageDir, dep, nodeModules);
      if (dir !== null) await visit(dir);
      else if (want === 'required') throw missing(name, dep);
    }
  };

  for (const entry of options.entries) {
    const dir = await resolvePackageDir(root, entry, nodeModules);
    if (dir === null) throw missing(root, entry);
    await visit(dir);
  }
  const byPath = (a: { path: string }, b: { path: string }): number =>
    a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
  return { packages: packages.sort(byPath), files: files.sort(byPath) };
}

/** Every file under `dir` (no links to directories), relative to `root`. */
export async function listTreeFiles(dir: string, root: string, signal?: AbortSignal): Promise<PackageFile[]> {
  return listPackageFiles(dir, [], root, signal);
}

/** Never loaded by Node 20: TypeScript sources and declarations, source maps of scripts. */
const UNLOADED_FILE = /\.(?:[cm]?ts|(?:[cm]?js|[cm]?ts)\.map)$/;

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

export function toPosix(relative: string): string {
  return relative.split(path.sep).join('/');
}

function normalisedMode(mode: number): 0o644 | 0o755 {
  return mode & 0o111 ? 0o755 : 0o644;
}

async function listPackageFiles(
  packageDir: string,
  unusedPaths: readonly string[],
  projectRoot: string,
  signal: AbortSignal | undefined,
): Promise<PackageFile[]> {
  const skipped = new Set(unusedPaths.map((p) => path.join(packageDir, p)));
  const files: PackageFile[] = [];
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
