/**
 * An adapter's binding to its base model, as bundle and install check it: the base is a
 * model component of the same bundle, at the revision the adapter names (the Hub commit or
 * the artifact's manifest digest), or holding the weights file whose digest it names. A
 * LoRA applied to other weights than it was trained on loads without complaint and answers
 * nonsense, so a missing or different base is refused, naming both.
 */
import { ApertusError } from '../errors.js';
import { ANNOTATION, MODELPACK } from './media-types.js';
import type { AdapterBase, Descriptor } from './types.js';

/** What the check needs to know of a component that may be a base. */
export interface BaseCandidate {
  name: string;
  kind: string;
  /** Its pinned revision (provenance.revision); absent for local files. */
  revision?: string | undefined;
  /** Its layers as written: the weight layers' digests are what `base.digest` may name. */
  layers: readonly Descriptor[];
}

/** The annotations an adapter's manifest carries: its base, for readers outside the bundle. */
export function adapterBaseAnnotations(base: AdapterBase, baseSource: string): Record<string, string> {
  return {
    [ANNOTATION.adapterBase]: base.component,
    [ANNOTATION.adapterBaseSource]: baseSource,
    ...(base.revision === undefined ? {} : { [ANNOTATION.adapterBaseRevision]: base.revision }),
    ...(base.digest === undefined ? {} : { [ANNOTATION.adapterBaseDigest]: base.digest }),
  };
}

/** `revision X` / `weights sha256:…` / both: how an adapter pins its base, in words. */
export function describeBasePin(base: AdapterBase): string {
  return [
    ...(base.revision === undefined ? [] : [`revision ${base.revision}`]),
    ...(base.digest === undefined ? [] : [`weights ${base.digest}`]),
  ].join(' and ');
}

/**
 * Throws (exit 2) when the adapter's base is not among `components` as a model, or is not
 * the one it names. `where` says whose base it is ('the recipe', 'the bundle').
 */
export function assertAdapterBase(
  adapter: { name: string; base: AdapterBase },
  components: readonly BaseCandidate[],
  where: string,
): void {
  const { base } = adapter;
  const pin = describeBasePin(base);
  const found = components.find((c) => c.name === base.component);
  if (found === undefined || found.kind !== 'model') {
    const models = components.filter((c) => c.kind === 'model').map((c) => c.name);
    throw new ApertusError(
      'adapter-base-missing',
      `Adapter ${adapter.name} is bound to base model ${base.component} (${pin}), but ${where} has no model component ${base.component}${found ? ` (it is of kind ${found.kind})` : ''}; its models: ${models.join(', ') || 'none'}.`,
      {
        hint: `Add the base model the adapter was trained on as component ${base.component}, or bind the adapter to one of ${where}'s models with components[].base.`,
      },
    );
  }
  const problems: string[] = [];
  if (base.revision !== undefined && base.revision !== found.revision) {
    problems.push(
      `it is at ${found.revision === undefined ? 'no revision (local files)' : `revision ${found.revision}`}, not ${base.revision}`,
    );
  }
  const weights = [
    ...new Set(found.layers.filter((layer) => layer.mediaType === MODELPACK.weight).map((l) => l.digest)),
  ];
  if (base.digest !== undefined && !weights.includes(base.digest)) {
    problems.push(
      `none of its weights files is ${base.digest} (it has ${weights.length === 0 ? 'none' : weights.join(', ')})`,
    );
  }
  if (problems.length === 0) return;
  throw new ApertusError(
    'adapter-base-mismatch',
    `Adapter ${adapter.name} is bound to base model ${base.component} at ${pin}, but ${where}'s ${base.component} differs: ${problems.join('; ')}.`,
    {
      hint: `Bundle the base the adapter was trained on as ${base.component}; if the adapter was trained on this one, bind it to it (components[].base${base.revision !== undefined ? `.revision: ${found.revision ?? '(use digest)'}` : `.digest: ${weights[0] ?? '…'}`}).`,
    },
  );
}
