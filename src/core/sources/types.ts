import type { RunOptions } from '../progress.js';

/**
 * What every remote source (hf:, oci:, pip:) gives the bundle planner. Resolution reads
 * metadata only (so `bundle --dry-run` can show exact files and bytes); fetching
 * downloads into the cache with resume and verification, and returns local paths.
 */
export interface SourceContext extends RunOptions {
  /** Downloads are kept here between runs: interrupted ones resume, finished ones are reused. */
  cacheDir: string;
  /** Environment to read HF_TOKEN, HF_ENDPOINT, HF_HOME and the like from (never process.env directly). */
  env: Readonly<Record<string, string | undefined>>;
}

export interface ResolvedFile {
  /** Path inside the component, '/'-separated. */
  path: string;
  size: number;
  /** Known content digest before download, when the source publishes one ('sha256:<hex>'). */
  digest?: string;
}

export interface ResolvedSource {
  /** The source as written in the recipe. */
  source: string;
  /** Exact URL-like identity with the pinned revision, for provenance. */
  pinned: string;
  /** Commit sha, image manifest digest, or lock hash. */
  revision: string;
  license?: string;
  files: ResolvedFile[];
}

export interface FetchedFile extends ResolvedFile {
  /** Absolute path of the verified file on this machine. */
  localPath: string;
}
