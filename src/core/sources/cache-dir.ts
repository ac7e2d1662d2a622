import os from 'node:os';
import path from 'node:path';

/** Downloads live here between runs: $XDG_CACHE_HOME/apertus, else ~/.cache/apertus. */
export function defaultCacheDir(env: Readonly<Record<string, string | undefined>>): string {
  const base = env.XDG_CACHE_HOME || path.join(env.HOME || os.homedir(), '.cache');
  return path.join(base, 'apertus');
}
