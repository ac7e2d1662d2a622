/**
 * Minimal glob matching for picking files out of a repository listing (`include`/`exclude`
 * in a recipe), with .gitignore's rules: `*` and `?` stay inside one path segment, `**`
 * spans segments, a trailing `/` means "everything under this folder", and a pattern with no
 * `/` at its start or middle matches at any depth: `*.safetensors` picks shards in
 * subfolders too, as `huggingface-cli download --include` (fnmatch) does; `/*.json` only
 * at the root.
 * Character classes are not supported: `[` and `]` match themselves.
 */
import { ApertusError } from '../../errors.js';

export interface PathFilter {
  include?: string[];
  exclude?: string[];
}

export function compileGlob(pattern: string): RegExp {
  if (pattern.trim() === '' || pattern.includes('\0')) {
    throw new ApertusError('glob-invalid', `The file pattern ${JSON.stringify(pattern)} is empty.`, {
      hint: "Remove the empty entry from include/exclude, or write a pattern such as '*.safetensors'.",
    });
  }
  // As in .gitignore: a '/' at the start or in the middle anchors the pattern at the root.
  const anchored = pattern.slice(0, -1).includes('/');
  let glob = pattern.startsWith('/') ? pattern.slice(1) : pattern;
  if (glob.endsWith('/')) glob += '**';
  if (!anchored) glob = `**/${glob}`;
  let source = '';
  for (let i = 0; i < glob.length; ) {
    const atSegmentStart = i === 0 || glob[i - 1] === '/';
    if (atSegmentStart && glob.startsWith('**/', i)) {
      source += '(?:.*/)?';
      i += 3;
    } else if (glob.startsWith('**', i)) {
      source += '.*';
      i += 2;
    } else {
      const char = glob[i] as string;
      if (char === '*') source += '[^/]*';
      else if (char === '?') source += '[^/]';
      else source += char.replace(/[\\^$.+()|{}[\]]/g, '\\$&');
      i += 1;
    }
  }
  return new RegExp(`^${source}$`);
}

/** A predicate over '/'-separated paths: in `include` (when given) and in no `exclude`. */
export function createPathFilter(filter: PathFilter): (path: string) => boolean {
  const include = (filter.include ?? []).map(compileGlob);
  const exclude = (filter.exclude ?? []).map(compileGlob);
  return (path) =>
    (include.length === 0 || include.some((glob) => glob.test(path))) &&
    !exclude.some((glob) => glob.test(path));
}
