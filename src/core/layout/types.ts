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

/** What a service needs to run; rendered into a command by src/core/services. */
export interface ServiceSpec {
  name: string;
  runtime: 'llamacpp';
  /** Component holding the model, and the model file's path inside it. */
  model: { component: string; path: string; id: string };
  port: number;
  threads: number;
  contextSize: number;
  embeddings: boolean;
}

export interface VerifySpec {
  chat: { prompt: string; maxTokens: number };
  embeddings: { input: string; dimension: number } | null;
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
    provenance: { source: string; revision?: string; license?: string };
  }>;
  services: ServiceSpec[];
  verify: VerifySpec;
  requirements: { diskBytes: number; minVramBytes?: number; computeCapability?: string; driver?: string };
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
