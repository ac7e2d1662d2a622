import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { ApertusError } from '../errors.js';
import { bundleFileName } from '../layout/names.js';
import type { ServiceSpec } from '../layout/types.js';
import { PROJECT_ROOT } from '../project-root.js';
import { collectRuntimeFiles } from '../services/runtime-files.js';
import { type LoadedRecipe, loadRecipe } from '../spec/load-recipe.js';
import type { RecipeComponent } from '../spec/recipe-schema.js';
import type { BundleWritePlan } from './write-bundle.js';

type PlannedComponent = BundleWritePlan['components'][number];
type PlannedLayer = PlannedComponent['layers'][number];

/** What `apertus bundle --dry-run` shows: each component, its files and bytes. */
export interface BundlePlanSummary {
  name: string;
  version: string;
  recipe: string;
  outPath: string;
  components: Array<{ name: string; kind: string; source: string; files: number; bytes: number }>;
  totalBytes: number;
}

export interface BundlePlan {
  summary: BundlePlanSummary;
  write: BundleWritePlan;
}

/** Resolves a recipe into the exact files each component will carry. Reads, never writes. */
export async function planBundle(recipePath: string, options: { outDir: string }): Promise<BundlePlan> {
  const loaded = await loadRecipe(recipePath);
  const { recipe } = loaded;
  const components: PlannedComponent[] = [];
  for (const component of recipe.components) components.push(await planFileComponent(loaded, component));

  if (recipe.services.some((s) => s.runtime === 'llamacpp')) components.push(await planRuntimeComponent());

  const services: ServiceSpec[] = recipe.services.map((s) => {
    const [component, ...rest] = s.model.split('/');
    const modelPath = rest.join('/');
    const planned = components.find((c) => c.name === component);
    if (!planned?.layers.some((l) => l.type === 'file' && l.title === modelPath)) {
      throw new ApertusError(
        'recipe-model-missing',
        `Service ${s.name} serves ${s.model}, which component ${component} does not hold.`,
        {
          hint: `Check services[].model in ${loaded.file}: it is COMPONENT/PATH, with PATH as listed under the component's source.`,
        },
      );
    }
    return {
      name: s.name,
      runtime: s.runtime,
      model: { component: component as string, path: modelPath, id: s.modelId },
      port: s.port,
      threads: s.threads,
      contextSize: s.contextSize,
      embeddings: s.embeddings,
    };
  });

  const write: BundleWritePlan = {
    name: recipe.metadata.name,
    version: recipe.metadata.version,
    description: recipe.metadata.description,
    recipe: { fileName: path.basename(loaded.file), bytes: loaded.bytes },
    components,
    services,
    verify: recipe.verify,
    requirements: {},
  };
  const summary: BundlePlanSummary = {
    name: write.name,
    version: write.version,
    recipe: loaded.file,
    outPath: path.join(path.resolve(options.outDir), bundleFileName(write.name, write.version)),
    components: await Promise.all(components.map(summariseComponent)),
    totalBytes: 0,
  };
  summary.totalBytes = summary.components.reduce((sum, c) => sum + c.bytes, 0);
  return { summary, write };
}

async function planFileComponent(
  loaded: LoadedRecipe,
  component: RecipeComponent,
): Promise<PlannedComponent> {
  const relative = component.source.slice('file:'.length);
  const source = path.resolve(loaded.dir, relative);
  const info = await lstat(source).catch(() => undefined);
  if (!info) {
    throw new ApertusError(
      'source-not-found',
      `Component ${component.name}: ${component.source} does not exist (${source}).`,
      {
        hint: `Paths in file: sources are relative to ${loaded.dir}.`,
      },
    );
  }
  const files = info.isDirectory() ? await listFiles(source) : [path.basename(source)];
  const root = info.isDirectory() ? source : path.dirname(source);
  if (files.length === 0) {
    throw new ApertusError('source-empty', `Component ${component.name}: ${source} holds no files.`, {
      hint: 'Point the source at the directory that holds the files, or at one file.',
    });
  }
  return {
    name: component.name,
    kind: component.kind,
    provenance: { source: component.source, ...(component.license ? { license: component.license } : {}) },
    layers: files.map((title) => ({ type: 'file', source: path.join(root, title), title })),
  };
}

/** Regular files under `dir`, relative and sorted; links and special files are refused. */
async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  const entries = await readdir(path.join(dir, prefix), { withFileTypes: true });
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const relative = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await listFiles(dir, relative)));
    else if (entry.isFile()) out.push(relative);
    else {
      throw new ApertusError(
        'source-unsupported-file',
        `${path.join(dir, relative)} is not a regular file or directory.`,
        {
          hint: 'Bundles hold regular files only: replace links with the files they point to.',
        },
      );
    }
  }
  return out;
}

async function planRuntimeComponent(): Promise<PlannedComponent> {
  const runtime = await collectRuntimeFiles(PROJECT_ROOT);
  return {
    name: 'runtime',
    kind: 'runtime',
    provenance: { source: `node ${process.version} + apertus llamacpp server`, license: 'MIT' },
    layers: [
      { type: 'file', source: runtime.node.path, title: 'bin/node', mode: 0o755 },
      { type: 'tar', name: 'server', entries: runtime.tree },
    ],
  };
}

async function summariseComponent(
  component: PlannedComponent,
): Promise<BundlePlanSummary['components'][number]> {
  let bytes = 0;
  let files = 0;
  for (const layer of component.layers as PlannedLayer[]) {
    const sources = layer.type === 'file' ? [layer.source] : layer.entries.map((e) => e.source);
    for (const source of sources) {
      bytes += (await lstat(source)).size;
      files++;
    }
  }
  return { name: component.name, kind: component.kind, source: component.provenance.source, files, bytes };
}
