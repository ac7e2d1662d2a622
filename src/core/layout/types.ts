/**
 * Types of the bundle format (DESIGN.md section 2). Only src/core/layout names paths
 * inside a bundle; everyone else goes through these types and the layout functions.
 */
import type { EvalSpec } from '../eval/eval-set.js';
import type { ServiceSpec } from '../runtimes/registry.js';

export interface Descriptor {
  mediaType: string;
  digest: string; // 'sha256:<hex>'
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export type ComponentKind = 'model' | 'adapter' | 'runtime' | 'files' | 'image' | 'wheels';

/**
 * What a LoRA adapter (a component of kind 'adapter') is bound to: the model component of
 * the same bundle it was trained on, pinned by its revision or by a weights file's digest.
 * An adapter whose base is missing or differs is refused by bundle and install alike.
 */
export interface AdapterBase {
  /** The base model component's name. */
  component: string;
  /** The base's pinned revision: the Hub commit (hf:) or the artifact's manifest digest (oci:). */
  revision?: string;
  /** `sha256:<hex>` of a weights file of the base: what `sha256sum model.gguf` prints. */
  digest?: string;
}

export type { ServiceImage } from '../runtimes/container/service-image.js';
/*
 * The services of a bundle: each kind's spec is defined by its adapter under
 * src/core/runtimes/<kind>/, and ServiceSpec is their union, built by the registry.
 */
export type { ContainerServiceSpec } from '../runtimes/container/spec.js';
export type { LlamacppServiceSpec } from '../runtimes/llamacpp/spec.js';
export type { RagServiceSpec } from '../runtimes/rag/spec.js';
export type { ServiceSpec } from '../runtimes/registry.js';
export type { VllmChoice, VllmServiceSpec } from '../runtimes/vllm/spec.js';

/** A prompt with an expected answer pattern: the recipe's evaluation suite, run after install. */
export interface GoldenPrompt {
  name: string;
  /** The service asked (its /v1/chat/completions). */
  service: string;
  prompt: string;
  maxTokens: number;
  temperature: number;
  /** A JavaScript regular expression the answer must match. */
  expect: string;
}

export interface VerifySpec {
  chat: { prompt: string; maxTokens: number };
  embeddings: { input: string; dimension: number } | null;
  /** Absent in bundles written before golden prompts existed. */
  golden?: GoldenPrompt[];
  /** The recipe's evaluation sets and thresholds (src/core/eval); absent when it has none. */
  eval?: EvalSpec;
}

/** Where a component came from; its per-file digests are the layers of its manifest. */
export interface ComponentProvenance {
  /** The pinned source: 'hf://ORG/NAME@<commit>', 'oci:REGISTRY/NAME:TAG', 'file:PATH'. */
  source: string;
  /** Commit sha (hf:) or image manifest digest (oci:). */
  revision?: string;
  /** SPDX id or licence name, from the recipe, the model card or the image's licenses label. */
  license?: string;
  /** Where a person finds the source at that revision (hf: the Hub's tree page of the commit). */
  url?: string;
  /** Images: 'os/architecture[/variant]' of the manifest picked. */
  platform?: string;
  /** Wheels (pip:): the package index, never with credentials. */
  index?: string;
  /** Wheels (pip:): the target Python, MAJOR.MINOR; the host's python3 must match it. */
  python?: string;
  /** Wheels (pip:): the wheel platform tags resolved for. */
  platforms?: string[];
}

/** The bundle config blob: the root of trust, covered by SHA256SUMS and its signature. */
export interface BundleConfig {
  /** 1: apertus model artifacts; 2: ModelPack model components and component ref names. */
  formatVersion: 1 | 2;
  name: string;
  version: string;
  description: string;
  /** Digest of the recipe blob this bundle was built from (a layer of the bundle manifest). */
  recipe: { digest: string; path: string };
  components: Array<{
    name: string;
    kind: ComponentKind;
    manifest: Descriptor;
    provenance: ComponentProvenance;
    /** Kind 'adapter' only: the base model it is bound to. */
    base?: AdapterBase;
  }>;
  services: ServiceSpec[];
  verify: VerifySpec;
  requirements: { diskBytes: number; minVramBytes?: number; computeCapability?: string; driver?: string };
  /** Present on a delta bundle (`bundle --since`): the blobs it leaves out, which the target already has. */
  delta?: BundleDelta;
}

/** What a delta bundle leaves out, and the release it was cut against. */
export interface BundleDelta {
  /** The base bundle; null when the base was a list of digests. */
  base: { name: string; version: string; manifestDigest: string } | null;
  /** Layer blobs referenced by the manifests but not stored, sorted by digest. */
  omitted: Array<{ digest: string; size: number }>;
}

/** A component as read back from its manifest. */
export interface ComponentLayers {
  name: string;
  kind: ComponentKind;
  manifestDigest: string;
  /** The OCI empty descriptor, or for images the image config. */
  config: Descriptor;
  layers: Descriptor[];
}
