import type { Recipe } from '../../src/core/spec/recipe-schema.js';

/**
 * A ComponentFiles for resolveServices that takes every model and adapter path the
 * recipe's services name as present: which files a component holds is the sources' business.
 */
export function servedFiles(recipe: Recipe): () => string[] {
  return () =>
    recipe.services.flatMap((s) =>
      [
        ...('model' in s && typeof s.model === 'string' ? [s.model] : []),
        ...('adapters' in s && Array.isArray(s.adapters) ? s.adapters.map((a) => a.adapter) : []),
      ].map((path) => path.split('/').slice(1).join('/')),
    );
}
