/**
 * The GPU runtime: a model component served by vLLM in its vllm/vllm-openai container,
 * with the image and the flags the recipe leaves out chosen for each host's GPUs and driver.
 */
import type { z } from 'zod';
import type { ComponentView } from '../../bundle/component-files.js';
import { componentWorkload } from '../../check/model-workload.js';
import { componentIssue, type FieldIssue, type RuntimeAdapter } from '../adapter.js';
import { containerStopScript, startContainerService } from '../container/service.js';
import { resolveServiceImage } from '../container/service-image.js';
import { modelServerParts } from '../model-server.js';
import { servedAdapterIssues } from '../served-adapters.js';
import { planVllmLaunch, vllmLaunchRecord } from './launch.js';
import { readLoraRank } from './lora-rank.js';
import { readOfflineInputs } from './offline-inputs.js';
import { judgeOfflineReadiness } from './offline-readiness.js';
import {
  type VllmRecipeService,
  type VllmServiceSpec,
  vllmRecipeService,
  vllmServiceSchema,
} from './spec.js';
import { vllmMaxLoraRank, vllmRunSpec } from './vllm.js';

export const vllmRuntime: RuntimeAdapter<
  VllmServiceSpec,
  VllmRecipeService,
  z.input<typeof vllmRecipeService>
> = {
  runtime: 'vllm',
  recipeSchema: vllmRecipeService,
  checkRecipe(service, recipe) {
    const issues: FieldIssue[] = [];
    const names = recipe.componentNames;
    if (recipe.componentKind(service.image) !== 'image')
      issues.push(componentIssue(['image'], service.image, 'image', names));
    service.alternativeImages.forEach((image, j) => {
      if (recipe.componentKind(image) !== 'image')
        issues.push(componentIssue(['alternativeImages', j], image, 'image', names));
    });
    if (recipe.componentKind(service.model) !== 'model') {
      issues.push(componentIssue(['model'], service.model, 'model', names));
      return issues;
    }
    issues.push(
      ...servedAdapterIssues(
        service.adapters.map((a) => ({ component: a.adapter, id: a.modelId })),
        { component: service.model, id: service.modelId },
        recipe,
        (i) => ['adapters', i, 'adapter'],
        (i) => ['adapters', i, 'modelId'],
      ),
    );
    return issues;
  },
  recipeModel: (service) => ({ embeddings: service.embeddings }),
  resolve(service, context) {
    const image = resolveServiceImage(context, service.name, service.image);
    // checkRecipe made sure the model is a model component.
    return {
      name: service.name,
      runtime: 'vllm',
      image,
      model: { component: service.model, path: '', id: service.modelId },
      port: service.port,
      bind: service.bind,
      embeddings: service.embeddings,
      dtype: service.dtype,
      ...(service.maxModelLen === undefined ? {} : { maxModelLen: service.maxModelLen }),
      ...(service.tensorParallelSize === undefined ? {} : { tensorParallelSize: service.tensorParallelSize }),
      ...(service.gpuMemoryUtilization === undefined
        ? {}
        : { gpuMemoryUtilization: service.gpuMemoryUtilization }),
      extraArgs: service.extraArgs,
      ...(service.trustRemoteCode === undefined ? {} : { trustRemoteCode: service.trustRemoteCode }),
      ...(service.alternativeImages.length > 0
        ? {
            alternativeImages: service.alternativeImages.map((component) =>
              resolveServiceImage(context, service.name, component),
            ),
          }
        : {}),
      // Each rank is read from the adapter's files once they are fetched (withFetchedFiles).
      ...(service.adapters.length > 0
        ? { adapters: service.adapters.map((a) => ({ component: a.adapter, id: a.modelId })) }
        : {}),
    };
  },
  async withFetchedFiles(service, components) {
    if (service.adapters === undefined) return service;
    const adapters = [];
    for (const adapter of service.adapters) {
      const view = components.get(adapter.component);
      if (view === undefined) throw new TypeError(`adapter ${adapter.component} was not fetched`);
      adapters.push({ ...adapter, rank: await readLoraRank(view, service.name) });
    }
    return { ...service, adapters };
  },
  needsRuntimeComponent: false,

  bundleSchema: vllmServiceSchema,
  checkBundle(service, bundle) {
    const issues: FieldIssue[] = [];
    const names = bundle.componentNames;
    if (bundle.componentKind(service.image.component) !== 'image')
      issues.push(componentIssue(['image', 'component'], service.image.component, 'image', names));
    (service.alternativeImages ?? []).forEach((image, j) => {
      if (bundle.componentKind(image.component) !== 'image')
        issues.push(componentIssue(['alternativeImages', j, 'component'], image.component, 'image', names));
    });
    if (bundle.componentKind(service.model.component) !== 'model') {
      issues.push(componentIssue(['model', 'component'], service.model.component, 'model', names));
      return issues;
    }
    issues.push(
      ...servedAdapterIssues(
        service.adapters ?? [],
        service.model,
        bundle,
        (i) => ['adapters', i, 'component'],
        (i) => ['adapters', i, 'id'],
      ),
    );
    return issues;
  },
  dependsOn: () => [],
  modelId: modelServerParts.modelId,
  adapterIds: modelServerParts.adapterIds,
  endpoint: modelServerParts.endpoint,
  modelComponent: (service) => service.model.component,
  async workloads(service, components) {
    const component = components.get(service.model.component);
    const workload = component ? await componentWorkload(component, service.name) : undefined;
    if (workload === undefined) return [];
    const rank = await servedLoraRank(service, components);
    return [rank === undefined ? workload : { ...workload, lora: { rank, maxLoras: maxLorasOf(service) } }];
  },
  async offlineReadiness(service, components, names) {
    const component = components.get(service.model.component);
    if (!component) return [];
    const inputs = await readOfflineInputs(component, [...names(component.name), service.model.id]);
    return [judgeOfflineReadiness(service, inputs)];
  },

  needsContainerEngine: true,
  planLaunch: (service, host) =>
    planVllmLaunch(service, {
      gpu: host.gpu,
      workload: host.workloads.find((w) => w.device === 'gpu' && w.component === service.model.component),
      imageConfigs: host.imageConfigs,
    }),
  start: (transport, service, context) =>
    startContainerService(transport, vllmRunSpec(service, context.releaseDir, context.layout.root), context),
  stopScript: (service, layout) => containerStopScript(service.name, layout),
  healthPath: modelServerParts.healthPath,
  verify: modelServerParts.verify,
  report: (service) => ({
    modelId: service.model.id,
    ...(service.adapters?.length ? { adapters: service.adapters.map((a) => a.id) } : {}),
    image: service.image.reference,
    vllm: vllmLaunchRecord(service),
  }),
  summary: (service) =>
    [service.model.id, ...(service.adapters ?? []).map((a) => `${a.id} (adapter)`)].join(', '),
};

/**
 * The --max-lora-rank a service with adapters runs with, for the fit: each rank as the
 * bundle recorded it, or read from the adapter's files; undefined without adapters, or
 * while a rank is not at hand (the bundle step refuses an adapter without one).
 */
async function servedLoraRank(
  service: VllmServiceSpec,
  components: ReadonlyMap<string, ComponentView>,
): Promise<number | undefined> {
  if (!service.adapters?.length) return undefined;
  const ranks: number[] = [];
  for (const adapter of service.adapters) {
    const view = components.get(adapter.component);
    const readable = view?.files.some((f) => f.path === 'adapter_config.json' && f.read !== undefined);
    const rank = adapter.rank ?? (view && readable ? await readLoraRank(view, service.name) : undefined);
    if (rank === undefined) return undefined;
    ranks.push(rank);
  }
  return vllmMaxLoraRank(service.name, ranks);
}

/** --max-loras from the recipe's extra flags (either spelling), else vLLM's default, 1 (docs.vllm.ai, config/lora). */
function maxLorasOf(service: VllmServiceSpec): number {
  const args = service.extraArgs;
  for (const [i, arg] of args.entries()) {
    const value =
      arg === '--max-loras' ? args[i + 1] : arg.startsWith('--max-loras=') ? arg.slice(12) : undefined;
    const count = Number(value);
    if (value !== undefined && Number.isInteger(count) && count >= 1) return count;
  }
  return 1;
}
