/**
 * Recipe services to the bundle's ServiceSpecs, each by its kind's adapter: model paths
 * checked against what the components hold, images named as the host will load them, and
 * the RAG service's links to its model services turned into the URLs and model ids it is
 * started with.
 */
import { ApertusError } from '../errors.js';
import type { GoldenPrompt, VerifySpec } from '../layout/types.js';
import type { Recipe, RecipeService } from '../spec/recipe-schema.js';
import type { ResolveContext } from './adapter.js';
import type { ModelFilesView } from './offline-verdict.js';
import { adapterOf, recipeAdapterOf, type ServiceSpec } from './registry.js';

/** The files a component holds, by component name; null when there is no such component. */
export type ComponentFiles = (component: string) => readonly string[] | null;

export function resolveServices(recipe: Recipe, recipeFile: string, filesOf: ComponentFiles): ServiceSpec[] {
  const resolved = new Map<string, ServiceSpec>();
  const resolving = new Set<string>();
  const resolve = (service: RecipeService): ServiceSpec => {
    const done = resolved.get(service.name);
    if (done) return done;
    if (resolving.has(service.name)) {
      throw new ApertusError('service-cycle', `Service ${service.name} calls itself through others.`, {
        hint: `Fix the services of ${recipeFile} so that no service calls itself through others.`,
      });
    }
    resolving.add(service.name);
    const spec = recipeAdapterOf(service).resolve(service, context);
    resolved.set(service.name, spec);
    return spec;
  };
  const byName = (name: string) => {
    const entry = recipe.services.find((s) => s.name === name);
    return entry === undefined ? undefined : resolve(entry);
  };
  const context: ResolveContext = {
    recipeFile,
    serviceNames: recipe.services.map((s) => s.name),
    routeOf: (name) => {
      const spec = byName(name);
      if (spec === undefined) return undefined;
      const adapter = adapterOf(spec);
      if (adapter.gatewayRoute) return adapter.gatewayRoute(spec);
      const endpoint = adapter.endpoint(spec);
      return endpoint === null
        ? null
        : { kind: 'model', model: endpoint.modelId, url: endpoint.url, embeddings: endpoint.embeddings };
    },
    component: (name) => recipe.components.find((c) => c.name === name),
    filesOf,
    endpointOf: (name) => {
      const spec = byName(name);
      return spec === undefined ? null : adapterOf(spec).endpoint(spec);
    },
    portOf: (name) => byName(name)?.port,
  };
  return recipe.services.map(resolve);
}

/** The recipe's verify section with each golden prompt's service named (default: the first model server). */
export function resolveVerify(recipe: Recipe): VerifySpec {
  const firstModel = recipe.services.find((s) => recipeAdapterOf(s).recipeModel(s) !== null)?.name;
  const golden: GoldenPrompt[] = recipe.verify.golden.map((g) => {
    const service = g.service ?? firstModel;
    if (service === undefined) {
      throw new ApertusError(
        'recipe-service-missing',
        `Golden prompt ${g.name} names no service, and the recipe has none.`,
        {
          hint: 'Add a model service to the recipe, or remove verify.golden.',
        },
      );
    }
    return {
      name: g.name,
      service,
      prompt: g.prompt,
      maxTokens: g.maxTokens,
      temperature: g.temperature,
      expect: g.expect,
    };
  });
  return { chat: recipe.verify.chat, embeddings: recipe.verify.embeddings, golden };
}

/** The services completed from what the fetched components' files say (each kind's withFetchedFiles). */
export async function completeServices(
  services: readonly ServiceSpec[],
  components: ReadonlyMap<string, ModelFilesView>,
): Promise<ServiceSpec[]> {
  const completed: ServiceSpec[] = [];
  for (const service of services) {
    completed.push((await adapterOf(service).withFetchedFiles?.(service, components)) ?? service);
  }
  return completed;
}
