/**
 * Types of the bundle format (DESIGN.md section 2). Only src/core/layout names paths
 * inside a bundle; everyone else goes through these types and the layout functions.
 */

export interface Descriptor {
  mediaType: string;
  digest: string; // 'sha256:<hex>'
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export type ComponentKind = 'model' | 'runtime' | 'files' | 'image' | 'wheels';

/** A model server on CPU: our OpenAI-compatible server over node-llama-cpp. */
export interface LlamacppServiceSpec {
  name: string;
  runtime: 'llamacpp';
  /** Component holding the model, and the model file's path inside it. */
  model: { component: string; path: string; id: string };
  port: number;
  threads: number;
  contextSize: number;
  embeddings: boolean;
}

/** Our RAG service (templates/rag), in front of the model servers it embeds and chats through. */
export interface RagServiceSpec {
  name: string;
  runtime: 'rag';
  port: number;
  /** Base URL of the runtime it chats through, e.g. http://127.0.0.1:18080. */
  runtimeUrl: string;
  /** Base URL of the runtime serving embeddings, when not the chat runtime. */
  embeddingsUrl?: string;
  /** The id the runtime serves embeddings under; the collection is locked to it and `dimension`. */
  embeddingModel: string;
  dimension: number;
  chatModel: string;
  /** Services this one calls: started before it, stopped after it. */
  dependsOn?: string[];
  chunkSize?: number;
  chunkOverlap?: number;
  topK?: number;
  maxContextChars?: number;
  /** Text put before queries and passages before embedding (e5 models want 'query: ' and 'passage: '). */
  queryPrefix?: string;
  passagePrefix?: string;
  /** Vectors in a Qdrant server instead of the embedded store. */
  qdrant?: { url: string; collection: string };
}

/** What a service needs to run; rendered into a command by src/core/runtimes. */
export type ServiceSpec = LlamacppServiceSpec | RagServiceSpec | VllmServiceSpec | ContainerServiceSpec;

/** An image the bundle carries, as the host's container engine knows it after loading. */
export interface ServiceImage {
  component: string;
  /** REGISTRY/NAME:TAG as loaded (src/core/target/images.ts). */
  reference: string;
}

/** A vLLM instance in a container (src/core/runtimes/vllm/vllm.ts); flags the recipe leaves out come from the fit plan. */
export interface VllmServiceSpec {
  name: string;
  runtime: 'vllm';
  image: ServiceImage;
  /** The model component is the directory served; `path` is '' (the component's root). */
  model: { component: string; path: string; id: string };
  port: number;
  bind: '127.0.0.1' | '0.0.0.0';
  embeddings: boolean;
  dtype: 'auto' | 'half' | 'bfloat16' | 'float16';
  maxModelLen?: number;
  tensorParallelSize?: number;
  gpuMemoryUtilization?: number;
  extraArgs: string[];
  /** More vLLM images for other CUDA versions; install runs the one the host driver supports. */
  alternativeImages?: ServiceImage[];
  /** Set by install: what it chose for this host and why (src/core/runtimes/vllm/launch.ts). */
  chosen?: VllmChoice;
}

/** Where each launch setting of a vLLM service came from, on the host it was installed on. */
export interface VllmChoice {
  tensorParallelSize: 'recipe' | 'fit' | 'default';
  maxModelLen: 'recipe' | 'fit' | 'default';
  gpuMemoryUtilization: 'recipe' | 'fit' | 'default';
  /** 'driver': picked among the service's images by the host's NVIDIA driver. */
  image: 'recipe' | 'driver';
  /** One line: the GPUs and driver it was judged against, or why there was no fit. */
  detail: string;
}

/** Any image component run as a service (Qdrant, say): not a model server. */
export interface ContainerServiceSpec {
  name: string;
  runtime: 'container';
  image: ServiceImage;
  port: number;
  containerPort: number;
  bind: '127.0.0.1' | '0.0.0.0';
  args: string[];
  env: Record<string, string>;
  /** A component mounted read-only at /models/<component>. */
  modelComponent?: string;
  /** A path inside the container backed by a host directory that outlives releases. */
  dataDir?: string;
  healthPath: string;
  /** The image serves the OpenAI API under this model id: verified like a model server. */
  openai?: { modelId: string; embeddings: boolean };
}

/** A service that serves a model of the bundle (everything but the RAG service in front). */
export type ModelServiceSpec = Exclude<ServiceSpec, RagServiceSpec | ContainerServiceSpec>;

export function isModelService(service: ServiceSpec): service is ModelServiceSpec {
  return service.runtime !== 'rag' && service.runtime !== 'container';
}

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
  formatVersion: 1;
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
