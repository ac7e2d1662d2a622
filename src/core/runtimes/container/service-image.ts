/**
 * The image a container service runs, in a recipe (an image component's name) and in a
 * bundle (the component and the reference the host's engine knows it by after loading).
 * Shared by every kind that runs in a container.
 */
import { z } from 'zod';
import { ApertusError } from '../../errors.js';
import { parseOciReference, repoTag } from '../../sources/oci/parse-oci-reference.js';
import { imageReference, resourceName } from '../../spec/safe-values.js';
import type { ResolveContext } from '../adapter.js';

/** An image the bundle carries, as the host's container engine knows it after loading. */
export interface ServiceImage {
  component: string;
  /** REGISTRY/NAME:TAG as loaded (src/core/target/images.ts). */
  reference: string;
}

export const serviceImageSchema = z.object({ component: resourceName, reference: imageReference });

/** The image component `component` as the host's engine names it after loading: what install-plan.ts tags it with. */
export function resolveServiceImage(
  context: ResolveContext,
  service: string,
  component: string,
): ServiceImage {
  const entry = context.component(component);
  if (entry?.kind !== 'image') {
    throw new ApertusError(
      'recipe-image-missing',
      `Service ${service} runs image "${component}", which is not an image component of the recipe.`,
      { hint: `Name a component of kind image in services[].image of ${context.recipeFile}.` },
    );
  }
  const reference = parseOciReference(entry.source.replace(/^oci:/, ''));
  return { component, reference: repoTag(reference, reference.digest ?? '') };
}
