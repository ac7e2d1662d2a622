import { stat } from 'node:fs/promises';

/** The size of a regular file, or undefined when there is none at `path`. */
export async function regularFileSize(path: string): Promise<number | undefined> {
  try {
    const info = await stat(path);
    return info.isFile() ? info.size : undefined;
  } catch {
    return undefined;
  }
}
