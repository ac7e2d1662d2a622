/**
 * A `pip:` source as a bundle component of kind wheels: one file layer per wheel
 * (`wheels/<file>.whl`) plus the lock (`requirements.lock`), with the index (never its
 * credentials), the Python version and the platform tags as provenance.
 */
import { fetchPip } from '../sources/pip/fetch-pip.js';
import type { PipResolvedSource } from '../sources/pip/resolve-pip.js';
import type { SourceContext } from '../sources/types.js';
import type { RecipeComponent } from '../spec/recipe-schema.js';
import type { BundlePlanSummary } from './plan-bundle.js';
import type { PlannedComponent } from './write-bundle.js';

export async function wheelsComponent(
  spec: RecipeComponent,
  resolved: PipResolvedSource,
  ctx: Pick<SourceContext, 'signal'>,
): Promise<PlannedComponent> {
  const files = await fetchPip(resolved, ctx);
  return {
    name: spec.name,
    kind: 'wheels',
    provenance: {
      source: resolved.source,
      revision: resolved.revision,
      ...(spec.license ? { license: spec.license } : {}),
      index: resolved.index,
      python: resolved.python,
      platforms: resolved.platforms,
    },
    layers: files.map((f) => ({ type: 'file', source: f.localPath, title: f.path })),
  };
}

export function summariseWheels(
  spec: RecipeComponent,
  resolved: PipResolvedSource,
): BundlePlanSummary['components'][number] {
  return {
    name: spec.name,
    kind: spec.kind,
    source: resolved.pinned,
    revision: resolved.revision,
    license: spec.license ?? null,
    files: resolved.files.length,
    bytes: resolved.files.reduce((sum, f) => sum + f.size, 0),
  };
}
