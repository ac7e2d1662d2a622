import { createHash } from 'node:crypto';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { gitBlobOid } from './fake-hub.js';

export interface CachedRepo {
  /** 'ORG/NAME'. */
  id: string;
  /** The commit the snapshot is of; made up from the id and files when absent. */
  sha?: string;
  /** Refs pointing at the commit; default ['main']. */
  refs?: string[];
  files: Iterable<{ path: string; content: Buffer | string; lfs?: boolean }>;
}

/**
 * The layout huggingface_hub writes (runtime-facts §2.6) under `$HF_HOME/hub`: blobs named
 * by their etag (sha256 for LFS files, the git blob id otherwise), snapshot entries as
 * relative links into blobs/, and refs/<name> holding the commit. Returns the repo's
 * folder and its commit.
 */
export async function writeHfCache(hfHome: string, repo: CachedRepo): Promise<{ dir: string; sha: string }> {
  const files = [...repo.files].map((f) => ({ ...f, content: Buffer.from(f.content) }));
  const sha =
    repo.sha ??
    createHash('sha1')
      .update(repo.id)
      .update(JSON.stringify(files.map((f) => [f.path, gitBlobOid(f.content)])))
      .digest('hex');
  const dir = join(hfHome, 'hub', `models--${repo.id.replace('/', '--')}`);
  for (const file of files) {
    const etag = file.lfs
      ? createHash('sha256').update(file.content).digest('hex')
      : gitBlobOid(file.content);
    const blob = join(dir, 'blobs', etag);
    await mkdir(dirname(blob), { recursive: true });
    await writeFile(blob, file.content);
    const link = join(dir, 'snapshots', sha, ...file.path.split('/'));
    await mkdir(dirname(link), { recursive: true });
    await symlink(relative(dirname(link), blob), link);
  }
  for (const ref of repo.refs ?? ['main']) {
    const refFile = join(dir, 'refs', ...ref.split('/'));
    await mkdir(dirname(refFile), { recursive: true });
    await writeFile(refFile, sha);
  }
  return { dir, sha };
}
