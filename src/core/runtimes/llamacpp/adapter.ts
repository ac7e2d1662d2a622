/**
 * The llamacpp runtime: a GGUF model served on CPU by templates/runtime/server.mjs, run by
 * the Node binary the bundle ships, under systemd or apertus's supervisor.
 */
import path from 'node:path/posix';
import type { z } from 'zod';
import { ggufWorkload, withServerContexts } from '../../check/model-workload.js';
import { ApertusError } from '../../errors.js';
import { componentIssue, type RuntimeAdapter } from '../adapter.js';
import { modelServerParts } from '../model-server.js';
import { RUNTIME_PATHS, runtimePaths } from '../runtime-files.js';
import { servedAdapterIssues } from '../served-adapters.js';
import { managedStopScript, startRuntimeCommand } from '../service-manager.js';
import { renderLlamacppCommand } from './command.js';
import {
  type LlamacppRecipeService,
  type LlamacppServiceSpec,
  llamacppRecipeService,
  llamacppServiceSchema,
  splitModelPath,
} from './spec.js';

export const llamacppRuntime: RuntimeAdapter<
  LlamacppServiceSpec,
  LlamacppRecipeService,
  z.input<typeof llamacppRecipeService>
> = {
  runtime: 'llamacpp',
  recipeSchema: llamacppRecipeService,
  checkRecipe(service, recipe) {
    const { component } = splitModelPath(service.model);
    if (recipe.componentKind(component) === undefined)
      return [componentIssue(['model'], component, undefined, recipe.componentNames)];
    return servedAdapterIssues(
      service.adapters.map((a) => ({ component: splitModelPath(a.adapter).component, id: a.modelId })),
      { component, id: service.modelId },
      recipe,
      (i) => ['adapters', i, 'adapter'],
      (i) => ['adapters', i, 'modelId'],
    );
  },
  recipeModel: (service) => ({ embeddings: service.embeddings }),
  resolve(service, context) {
    const held = (value: string, field: string) => {
      const { component, path } = splitModelPath(value);
      if (!(context.filesOf(component) ?? []).includes(path)) {
        throw new ApertusError(
          'recipe-model-missing',
          `Service ${service.name} serves ${value}, which component ${component} does not hold.`,
          {
            hint: `Check services[].${field} in ${context.recipeFile}: it is COMPONENT/PATH, with PATH as listed under the component's source.`,
          },
        );
      }
      return { component, path };
    };
    const { component, path: modelPath } = held(service.model, 'model');
    const adapters = service.adapters.map((a) => ({
      ...held(a.adapter, 'adapters[].adapter'),
      id: a.modelId,
    }));
    return {
      name: service.name,
      runtime: 'llamacpp',
      model: { component, path: modelPath, id: service.modelId },
      port: service.port,
      threads: service.threads,
      contextSize: service.contextSize,
      embeddings: service.embeddings,
      ...(adapters.length > 0 ? { adapters } : {}),
    };
  },
  needsRuntimeComponent: true,

  bundleSchema: llamacppServiceSchema,
  checkBundle(service, bundle) {
    const { component } = service.model;
    if (bundle.componentKind(component) === undefined)
      return [componentIssue(['model', 'component'], component, undefined, bundle.componentNames)];
    return servedAdapterIssues(
      service.adapters ?? [],
      service.model,
      bundle,
      (i) => ['adapters', i, 'component'],
      (i) => ['adapters', i, 'id'],
    );
  },
  dependsOn: () => [],
  modelId: modelServerParts.modelId,
  adapterIds: modelServerParts.adapterIds,
  endpoint: modelServerParts.endpoint,
  modelComponent: (service) => service.model.component,
  async workloads(service, components) {
    const { component: name, path: file } = service.model;
    const component = components.get(name);
    const found = component?.files.find((f) => f.path === file);
    if (!component || !found) {
      throw component
        ? component.missing(file, `service ${service.name} serves`)
        : new ApertusError(
            'model-component-missing',
            `Service ${service.name} serves ${name}/${file}: there is no component ${name}.`,
            { hint: 'Name a component of kind model in services[].model.' },
          );
    }
    // A delta that leaves the model out: the host holds it from the base release.
    if (found.read === undefined) return [];
    const workload = await ggufWorkload({ ...found, read: found.read }, `${name}/${file}`, service, name);
    // An adapter file a delta left out still has its listed size.
    const adapters = (service.adapters ?? []).flatMap((adapter) => {
      const listed = components.get(adapter.component)?.files.find((f) => f.path === adapter.path);
      return listed ? [{ path: `${adapter.component}/${adapter.path}`, bytes: listed.size }] : [];
    });
    return [withServerContexts(workload, adapters, service.embeddings)];
  },

  needsContainerEngine: false,
  start: (transport, service, context) =>
    startRuntimeCommand(
      transport,
      service.name,
      llamacppReleaseCommand(service, context.releaseDir),
      context,
    ),
  stopScript: (service, layout) => managedStopScript(service.name, layout),
  healthPath: modelServerParts.healthPath,
  verify: modelServerParts.verify,
  report: (service) => ({
    modelId: service.model.id,
    ...(service.adapters?.length ? { adapters: service.adapters.map((a) => a.id) } : {}),
  }),
  summary: (service) =>
    [service.model.id, ...(service.adapters ?? []).map((a) => `${a.id} (adapter)`)].join(', '),
};

/** The server's argv in a release, program first. */
export function llamacppReleaseCommand(service: LlamacppServiceSpec, releaseDir: string): string[] {
  const runtime = runtimePaths(releaseDir);
  return renderLlamacppCommand(service, {
    node: runtime.node,
    server: path.join(runtime.dir, RUNTIME_PATHS.server),
    modelPath: path.join(releaseDir, service.model.component, service.model.path),
    adapters: (service.adapters ?? []).map((a) => ({
      id: a.id,
      path: path.join(releaseDir, a.component, a.path),
    })),
  });
}
