/**
 * Any image component run as a service with podman or docker (Qdrant, say). One that
 * declares the OpenAI API is verified like a model server; the others only answer their
 * health path.
 */
import type { z } from 'zod';
import { componentIssue, type FieldIssue, type RuntimeAdapter } from '../adapter.js';
import { verifyModelServer } from '../openai-checks.js';
import { containerRunSpec, containerStopScript, startContainerService } from './service.js';
import { resolveServiceImage } from './service-image.js';
import {
  type ContainerRecipeService,
  type ContainerServiceSpec,
  containerRecipeService,
  containerServiceSchema,
} from './spec.js';

export const containerRuntime: RuntimeAdapter<
  ContainerServiceSpec,
  ContainerRecipeService,
  z.input<typeof containerRecipeService>
> = {
  runtime: 'container',
  recipeSchema: containerRecipeService,
  checkRecipe(service, recipe) {
    const issues: FieldIssue[] = [];
    if (recipe.componentKind(service.image) !== 'image')
      issues.push(componentIssue(['image'], service.image, 'image', recipe.componentNames));
    if (service.model !== undefined && recipe.componentKind(service.model) === undefined)
      issues.push(componentIssue(['model'], service.model, undefined, recipe.componentNames));
    return issues;
  },
  recipeModel: () => null,
  resolve: (service, context) => ({
    name: service.name,
    runtime: 'container',
    image: resolveServiceImage(context, service.name, service.image),
    port: service.port,
    containerPort: service.containerPort,
    bind: service.bind,
    args: service.args,
    env: service.env,
    ...(service.model ? { modelComponent: service.model } : {}),
    ...(service.dataDir ? { dataDir: service.dataDir } : {}),
    healthPath: service.healthPath,
    ...(service.health === 'tcp' ? { health: 'tcp' as const } : {}),
    ...(service.openai ? { openai: service.openai } : {}),
  }),
  needsRuntimeComponent: false,

  bundleSchema: containerServiceSchema,
  checkBundle(service, bundle) {
    const issues: FieldIssue[] = [];
    if (bundle.componentKind(service.image.component) !== 'image')
      issues.push(
        componentIssue(['image', 'component'], service.image.component, 'image', bundle.componentNames),
      );
    if (service.modelComponent !== undefined && bundle.componentKind(service.modelComponent) === undefined)
      issues.push(
        componentIssue(['modelComponent'], service.modelComponent, undefined, bundle.componentNames),
      );
    return issues;
  },
  dependsOn: () => [],
  modelId: (service) => service.openai?.modelId ?? null,
  endpoint: () => null,

  needsContainerEngine: true,
  start: (transport, service, context) =>
    startContainerService(
      transport,
      containerRunSpec(service, context.releaseDir, context.layout.root),
      context,
    ),
  stopScript: (service, layout) => containerStopScript(service.name, layout),
  healthPath: (service) => (service.health === 'tcp' ? null : service.healthPath),
  async verify(transport, service, spec, signal) {
    const { openai } = service;
    if (!openai) return [];
    const server = {
      name: service.name,
      port: service.port,
      modelId: openai.modelId,
      embeddings: openai.embeddings,
    };
    return verifyModelServer(transport, server, spec, signal);
  },
  report: (service) => ({
    modelId: service.openai?.modelId ?? service.image.reference,
    image: service.image.reference,
  }),
  summary: (service) => service.image.reference,
};
