/**
 * What the offline-readiness judge (offline-readiness.ts) reads of a model component: its
 * file list and its few small files (config.json, tokenizer_config.json, top-level .py),
 * through the component view every reader of model files shares
 * (bundle/component-files.ts), so a bundle being written, a written bundle and a recipe
 * are judged alike. Files larger than a config can be are not read: a hostile bundle
 * cannot make the judge load gigabytes.
 */
import type { ComponentFile } from '../../bundle/component-files.js';
import type { ModelFilesView } from '../offline-verdict.js';
import type { OfflineInputs } from './offline-readiness.js';

/** config.json, tokenizer_config.json and model .py files are kilobytes; a chat template in tokenizer_config.json can be tens. */
const MAX_SMALL_FILE_BYTES = 4 << 20;

/** All the .py a model ships, read for their sibling imports: a model's code is rarely over a megabyte. */
const MAX_PYTHON_BYTES = 16 << 20;

function hasAutoMap(json: unknown): boolean {
  return typeof json === 'object' && json !== null && 'auto_map' in json;
}

async function readSmall(file: ComponentFile | undefined): Promise<string | undefined> {
  if (file?.read === undefined || file.size > MAX_SMALL_FILE_BYTES) return undefined;
  return (await file.read(0, file.size)).toString('utf8');
}

async function readJson(file: ComponentFile | undefined): Promise<unknown> {
  const text = await readSmall(file);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    // vLLM would fail on it too; the judge sees no auto_map and no chat template in it.
    return undefined;
  }
}

/** The judge's inputs for a model component; `names` say what the model is (source repo, served id). */
export async function readOfflineInputs(
  view: ModelFilesView,
  names: readonly string[],
): Promise<OfflineInputs> {
  const byPath = new Map(view.files.map((f) => [f.path, f]));
  const config = await readJson(byPath.get('config.json'));
  const tokenizerConfig = await readJson(byPath.get('tokenizer_config.json'));
  // The model's code is read only when it has some to run, and only so much of it.
  const python = new Map<string, string>();
  if (hasAutoMap(config) || hasAutoMap(tokenizerConfig)) {
    let budget = MAX_PYTHON_BYTES;
    for (const file of view.files) {
      if (!file.path.endsWith('.py') || file.path.includes('/') || file.size > budget) continue;
      const text = await readSmall(file);
      if (text === undefined) continue;
      budget -= file.size;
      python.set(file.path, text);
    }
  }
  const oversized = ['config.json', 'tokenizer_config.json'].filter(
    (name) => (byPath.get(name)?.size ?? 0) > MAX_SMALL_FILE_BYTES,
  );
  return {
    ...(oversized.length > 0 ? { oversized } : {}),
    component: view.name,
    files: view.files.map((f) => f.path),
    names,
    ...(config === undefined ? {} : { config }),
    ...(tokenizerConfig === undefined ? {} : { tokenizerConfig }),
    python,
  };
}
