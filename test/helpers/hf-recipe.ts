import { writeFile } from 'node:fs/promises';
import path from 'node:path';

/** Writes `<dir>/apertus.yaml`: a bundle whose one component, `model`, is `hf:REPO@main` (or @revision). */
export async function writeHfRecipe(
  dir: string,
  repo: string,
  filter: { include?: string[]; exclude?: string[]; revision?: string } = {},
): Promise<void> {
  const lines = [
    'apiVersion: apertus.dev/v1',
    'kind: Bundle',
    'metadata:',
    '  name: apertus-8b',
    '  version: 1.0.0',
    'components:',
    '  - name: model',
    '    kind: model',
    `    source: hf:${repo}@${filter.revision ?? 'main'}`,
  ];
  if (filter.include) lines.push(`    include: ${JSON.stringify(filter.include)}`);
  if (filter.exclude) lines.push(`    exclude: ${JSON.stringify(filter.exclude)}`);
  await writeFile(path.join(dir, 'apertus.yaml'), `${lines.join('\n')}\n`);
}
