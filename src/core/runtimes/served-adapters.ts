/**
 * LoRA adapters a model server serves next to its base model, each under a model id of its
 * own (the llamacpp and vllm kinds share this). An adapter is a component of kind 'adapter'
 * bound to a base model (layout/adapter-base.ts); a service may serve it only over that base.
 */
import { componentIssue, type FieldIssue } from './adapter.js';

/** What a service knows of the rest of its recipe or bundle, for its adapters. */
export interface AdapterView {
  componentKind(name: string): string | undefined;
  componentNames: readonly string[];
  adapterBase(name: string): string | undefined;
}

/**
 * The rules between a service's adapters and the rest: each is a component of kind adapter,
 * bound to the model the service serves, and each id is its own (and not the base's).
 */
export function servedAdapterIssues(
  adapters: ReadonlyArray<{ component: string; id: string }>,
  model: { component: string; id: string },
  view: AdapterView,
  /** The path of entry i's component field, inside the service. */
  pathOf: (index: number) => FieldIssue['path'],
  idPathOf: (index: number) => FieldIssue['path'],
): FieldIssue[] {
  const issues: FieldIssue[] = [];
  const ids = new Set([model.id]);
  adapters.forEach((adapter, i) => {
    if (view.componentKind(adapter.component) !== 'adapter') {
      issues.push(componentIssue(pathOf(i), adapter.component, 'adapter', view.componentNames));
    } else {
      const base = view.adapterBase(adapter.component);
      if (base !== model.component) {
        issues.push({
          path: pathOf(i),
          message: `adapter ${adapter.component} is bound to base model ${base}, but this service serves ${model.component}`,
        });
      }
    }
    if (ids.has(adapter.id)) {
      issues.push({
        path: idPathOf(i),
        message: `model id "${adapter.id}" is already served by this service: each adapter needs an id of its own`,
      });
    }
    ids.add(adapter.id);
  });
  return issues;
}
