/**
 * Recipe services to the bundle's ServiceSpecs: model paths checked against what the
 * components hold, and the RAG service's links to its model services turned into the
 * URLs and model ids it is started with.
 */
import { ApertusError } from '../errors.js';
import type { GoldenPrompt, LlamacppServiceSpec, ServiceSpec, VerifySpec } from '../layout/types.js';
import type { Recipe, RecipeService } from '../spec/recipe-schema.js';
import { resolveContainerService } from './container/service.js';

type RecipeRagService = Extract<RecipeService, { runtime: 'rag' }>;
type RecipeModelService = Extract<RecipeService, { runtime: 'llamacpp' }>;

/** The files a component holds, by component name; null when there is no such component. */
export type ComponentFiles = (component: string) => readonly string[] | null;

export function resolveServices(recipe: Recipe, recipeFile: string, filesOf: ComponentFiles): ServiceSpec[] {
  const models = new Map<string, ServiceSpec>();
  for (const s of recipe.services) {
    if (s.runtime === 'llamacpp') models.set(s.name, resolveModelService(s, recipeFile, filesOf));
    else if (s.runtime !== 'rag') models.set(s.name, resolveContainerService(s, recipe, recipeFile));
  }
  return recipe.services.map((s) =>
    s.runtime === 'rag' ? resolveRagService(s, models, recipeFile) : (models.get(s.name) as ServiceSpec),
  );
}

function resolveModelService(
  s: RecipeModelService,
  recipeFile: string,
  filesOf: ComponentFiles,
): LlamacppServiceSpec {
  const [component = '', ...rest] = s.model.split('/');
  const modelPath = rest.join('/');
  if (!(filesOf(component) ?? []).includes(modelPath)) {
    throw new ApertusError(
      'recipe-model-missing',
      `Service ${s.name} serves ${s.model}, which component ${component} does not hold.`,
      {
        hint: `Check services[].model in ${recipeFile}: it is COMPONENT/PATH, with PATH as listed under the component's source.`,
      },
    );
  }
  return {
    name: s.name,
    runtime: s.runtime,
    model: { component, path: modelPath, id: s.modelId },
    port: s.port,
    threads: s.threads,
    contextSize: s.contextSize,
    embeddings: s.embeddings,
  };
}

/** Where a model service answers on the host, and under which model id. */
function endpointOf(service: ServiceSpec): { url: string; modelId: string } {
  if (service.runtime === 'rag' || service.runtime === 'container')
    throw new Error(`service ${service.name} is not a model service`);
  return { url: `http://127.0.0.1:${service.port}`, modelId: service.model.id };
}

function resolveRagService(
  s: RecipeRagService,
  models: Map<string, ServiceSpec>,
  recipeFile: string,
): ServiceSpec {
  const find = (name: string) => {
    const found = models.get(name);
    if (!found) {
      throw new ApertusError(
        'recipe-service-missing',
        `Service ${s.name} calls "${name}", which is not a model service.`,
        {
          hint: `Name a model service of ${recipeFile} in services[].chat and services[].embeddings.`,
        },
      );
    }
    return endpointOf(found);
  };
  const chat = find(s.chat);
  const embedder = find(s.embeddings ?? s.chat);
  const qdrant = s.qdrant ? models.get(s.qdrant.service) : undefined;
  const dependsOn = [...new Set([s.chat, s.embeddings ?? s.chat, ...(qdrant ? [qdrant.name] : [])])];
  return {
    name: s.name,
    runtime: 'rag',
    port: s.port,
    runtimeUrl: chat.url,
    ...(embedder.url !== chat.url ? { embeddingsUrl: embedder.url } : {}),
    embeddingModel: embedder.modelId,
    dimension: s.dimension,
    chatModel: chat.modelId,
    dependsOn,
    ...pickDefined(s, 'chunkSize', 'chunkOverlap', 'topK', 'maxContextChars', 'queryPrefix', 'passagePrefix'),
    ...(s.qdrant && qdrant
      ? { qdrant: { url: `http://127.0.0.1:${qdrant.port}`, collection: s.qdrant.collection } }
      : {}),
  };
}

/** The recipe's verify section with each golden prompt's service named. */
export function resolveVerify(recipe: Recipe): VerifySpec {
  const firstModel = recipe.services.find((s) => s.runtime !== 'rag' && s.runtime !== 'container')?.name;
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

function pickDefined<T extends object, K extends keyof T>(value: T, ...keys: K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const key of keys) if (value[key] !== undefined) out[key] = value[key];
  return out;
}
