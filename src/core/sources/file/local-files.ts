/**
 * Files on this machine as a component holds them: a recipe's `file:` source (a file or a
 * directory, relative to the recipe), listed once for `bundle` and `check --recipe` alike,
 * and any other local directory a model is read from (`check --model`, a Hugging Face
 * cache snapshot).
 */
import { lstat, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { ApertusError } from '../../errors.js';
import { type RangeReader, withFileRange } from '../../gpu/byte-range.js';

export interface LocalFile {
  /** Path below the root, '/'-separated. */
  path: string;
  size: number;
}

export interface LocalSource {
  /** The directory the paths are relative to. */
  root: string;
  files: LocalFile[];
}

export interface ListOptions {
  /**
   * Follow links to regular files (a Hugging Face snapshot is made of them) and skip
   * anything else (dangling links, sockets). Without it, such an entry is refused: a
   * bundle holds regular files only.
   */
  followLinks?: boolean;
}

/** A recipe component's `file:PATH`: its files with their sizes, refused when absent or empty. */
export async function listLocalSource(
  recipeDir: string,
  component: { name: string; source: string },
): Promise<LocalSource> {
  const source = path.resolve(recipeDir, component.source.slice('file:'.length));
  const info = await lstat(source).catch(() => undefined);
  if (!info) {
    throw new ApertusError(
      'source-not-found',
      `Component ${component.name}: ${component.source} does not exist (${source}).`,
      { hint: `Paths in file: sources are relative to ${recipeDir}.` },
    );
  }
  const root = info.isDirectory() ? source : path.dirname(source);
  const files = info.isDirectory()
    ? await listLocalFiles(source)
    : [{ path: path.basename(source), size: info.size }];
  if (files.length === 0) {
    throw new ApertusError('source-empty', `Component ${component.name}: ${source} holds no files.`, {
      hint: 'Point the source at the directory that holds the files, or at one file.',
    });
  }
  return { root, files };
}

/** Regular files under `dir`, relative and sorted by path. */
export async function listLocalFiles(dir: string, options: ListOptions = {}): Promise<LocalFile[]> {
  const out: LocalFile[] = [];
  const walk = async (prefix: string): Promise<void> => {
    const entries = await readdir(path.join(dir, prefix), { withFileTypes: true });
    for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const relative = prefix ? `${prefix}/${entry.name}` : entry.name;
      const full = path.join(dir, relative);
      if (entry.isDirectory()) await walk(relative);
      else if (entry.isFile()) out.push({ path: relative, size: (await lstat(full)).size });
      else if (options.followLinks) {
        // Links to directories are not followed (a loop would never end; snapshots link files only).
        const target = entry.isSymbolicLink() ? await stat(full).catch(() => undefined) : undefined;
        if (target?.isFile()) out.push({ path: relative, size: target.size });
      } else {
        throw new ApertusError('source-unsupported-file', `${full} is not a regular file or directory.`, {
          hint: 'Bundles hold regular files only: replace links with the files they point to.',
        });
      }
    }
  };
  await walk('');
  return out;
}

/** Reads a local file by byte range, opening it for each read: headers take only a few. */
export function fileRange(file: string): RangeReader {
  return (offset, length) => withFileRange(file, (read) => read(offset, length));
}
