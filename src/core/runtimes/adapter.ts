/**
 * The one interface every kind of service implements (STYLE.md 16): its recipe entry, its
 * bundle entry, how the one becomes the other, and what install does with it on a host.
 * The recipe union, the bundle schema and the JSON Schema are built from the adapters in
 * registry.ts; nothing outside an adapter asks which kind a service is.
 *
 * An adapter module must not import the recipe or bundle schema modules (they import the
 * registry, which imports the adapters): the pure parts of a kind live in its spec.ts.
 */
import type { z } from 'zod';
import type { ComponentView } from '../bundle/component-files.js';
import type { ModelWorkload } from '../check/model-workload.js';
import type { GpuInventory } from '../gpu/gpu-inventory.js';
import type { Transport } from '../host/transport.js';
import type { VerifySpec } from '../layout/types.js';
import type { HostLayout } from '../target/layout.js';
import type { ServiceManager } from '../target/preflight.js';
import type { ContainerHost } from './container/engine.js';
import type { ModelFilesView, OfflineVerdict } from './offline-verdict.js';
import type { ServiceCheck } from './service-check.js';
import type { VllmLaunchRecord } from './vllm/launch.js';

/** What every service has, in a recipe and in a bundle, whatever its kind. */
export interface ServiceBase {
  name: string;
  runtime: string;
  port: number;
}

/** A zod object schema of one kind, discriminated by `runtime`. */
export type KindSchema<Output, Input = Output> = z.ZodType<Output, Input> & z.core.$ZodTypeDiscriminable;

/** A cross-field problem of one service entry, at its path inside the entry. */
export interface FieldIssue {
  path: Array<string | number>;
  message: string;
}

/** What a recipe service may ask about the rest of its recipe. */
export interface RecipeView {
  /** The kind of the named component; undefined when there is none. */
  componentKind(name: string): string | undefined;
  componentNames: readonly string[];
  /** The base model component of the named adapter component; undefined when it is none. */
  adapterBase(name: string): string | undefined;
  /** The runtime of the named service; undefined when there is none. */
  runtimeOf(name: string): string | undefined;
  /** The named service as a model server; null when it is not one, undefined when there is no such service. */
  modelServer(name: string): { embeddings: boolean } | null | undefined;
  modelServerNames: readonly string[];
}

/** What a bundle service may ask about the rest of its bundle config. */
export interface BundleView {
  componentKind(name: string): string | undefined;
  componentNames: readonly string[];
  /** The base model component of the named adapter component; undefined when it is none. */
  adapterBase(name: string): string | undefined;
  serviceNames: readonly string[];
  /** The name of the service listening on `port`; undefined when none does. */
  serviceOnPort(port: number): string | undefined;
}

/** Where a model server answers on the host and what it serves: what the RAG service calls. */
export interface ModelEndpoint {
  url: string;
  modelId: string;
  embeddings: boolean;
}

/** What the gateway routes to a service: a model by the body's `model`, or a RAG collection by path. */
export type GatewayRoute =
  | { kind: 'model'; model: string; url: string; embeddings: boolean }
  | { kind: 'rag'; collection: string; url: string };

/** What resolving a recipe service into a bundle service may look up. */
export interface ResolveContext {
  /** Every service of the recipe, in order. */
  serviceNames: readonly string[];
  /** What the gateway routes to the named service; null: nothing; undefined: no such service. */
  routeOf(name: string): GatewayRoute | null | undefined;
  /** The recipe file, for error hints. */
  recipeFile: string;
  /** The recipe entry of a component; undefined when there is none. */
  component(name: string): { kind: string; source: string } | undefined;
  /** The files a component holds; null when there is no such component. */
  filesOf(component: string): readonly string[] | null;
  /** The named service, resolved, as a model server; null when it is not one or does not exist. */
  endpointOf(name: string): ModelEndpoint | null;
  /** The host port of the named service; undefined when there is none. */
  portOf(name: string): number | undefined;
}

/** What install knows of a host when it chooses how each service runs there. */
export interface LaunchHost {
  /** The host's GPUs as the install's host check probed them; undefined when not probed. */
  gpu: GpuInventory | undefined;
  /** The bundle's model workloads (src/core/operations/check-subject.ts). */
  workloads: readonly ModelWorkload[];
  /** Image configs by image component name: their Env carries CUDA_VERSION. */
  imageConfigs: ReadonlyMap<string, unknown>;
  /** How this host faces the network (install --expose-address, --insecure-http); absent: as the recipe says, with TLS. */
  exposure?: { address?: string | undefined; insecureHttp: boolean } | undefined;
}

/**
 * What the operator gives install for one host that never goes into a bundle: the gateway's
 * TLS certificate and key (PEM text, read on the operator's side).
 */
export interface HostProvision {
  tls?: { cert: string; key: string } | undefined;
}

/** What starting one service of a release needs. */
export interface StartContext {
  layout: HostLayout;
  releaseDir: string;
  manager: ServiceManager;
  /** The host's container engine, probed once for all the release's containers. */
  containerHost(): Promise<ContainerHost>;
}

/** A service's entry in the install report (a JSON contract: see operations/install-report.ts). */
export interface ServiceReportEntry {
  modelId: string;
  /** Model servers with LoRA adapters: the id each adapter is served under. */
  adapters?: string[];
  /** Container services: the image reference the engine ran. */
  image?: string;
  /** vLLM services: the launch flags install chose for this host, and where each came from. */
  vllm?: VllmLaunchRecord;
}

export interface RuntimeAdapter<S extends ServiceBase, R extends ServiceBase, RIn = R> {
  /** The value of `runtime` in recipes and bundles. */
  readonly runtime: S['runtime'];

  // The recipe part.
  /** The service's entry in apertus.yaml; its `.describe()` texts go into the JSON Schema. */
  readonly recipeSchema: KindSchema<R, RIn>;
  /** Rules between this entry and the rest of the recipe, at paths inside the entry. */
  checkRecipe(service: R, recipe: RecipeView): FieldIssue[];
  /** The entry as a model server (what RAG and verify.embeddings may use); null when it is none. */
  recipeModel(service: R): { embeddings: boolean } | null;
  /** Its bundle entry, from the recipe and the components resolved. */
  resolve(service: R, context: ResolveContext): S;
  /**
   * Its bundle entry completed from what its components' files say, once they are fetched and
   * before the bundle is written (vllm: each adapter's rank, from its adapter_config.json).
   * Absent: as resolved.
   */
  withFetchedFiles?(service: S, components: ReadonlyMap<string, ModelFilesView>): Promise<S>;
  /** Runs on the Node binary and files of the bundle's runtime component. */
  readonly needsRuntimeComponent: boolean;

  // The bundle part.
  /** The bundle's ServiceSpec of this kind; every value that reaches a host is validated here. */
  readonly bundleSchema: KindSchema<S>;
  /** Rules between this service and the rest of the bundle config, at paths inside the service. */
  checkBundle(service: S, bundle: BundleView): FieldIssue[];
  /** Services this one calls: started before it, stopped after it. */
  dependsOn(service: S): readonly string[];
  /** The model id it lists on /v1/models; null for a service without the OpenAI API. */
  modelId(service: S): string | null;
  /** The ids its LoRA adapters are listed under, next to its model id; absent: none. */
  adapterIds?(service: S): readonly string[];
  /** Where and what it serves to the RAG service; null when it is no model server. */
  endpoint(service: S): ModelEndpoint | null;
  /** What the gateway routes to it; absent: its model endpoint, if any. */
  gatewayRoute?(service: S): GatewayRoute | null;
  /** The model component it serves, which no other judgement of the check takes; absent: none. */
  modelComponent?(service: S): string;
  /** What the host check judges of the model it serves, read from the components (bundle or recipe). */
  workloads?(service: S, components: ReadonlyMap<string, ComponentView>): Promise<ModelWorkload[]>;
  /**
   * Whether the models it serves carry every file the runtime would fetch at start
   * (operations/offline-gate.ts); `names` gives a component's source and ids. Absent: nothing to judge.
   */
  offlineReadiness?(
    service: S,
    components: ReadonlyMap<string, ModelFilesView>,
    names: (component: string) => readonly string[],
  ): Promise<OfflineVerdict[]>;

  // On a host.
  /** Runs in a container: the host needs podman or docker. */
  readonly needsContainerEngine: boolean;
  /** The service as this host will run it (image and flags for its GPUs); absent: as bundled. */
  planLaunch?(service: S, host: LaunchHost): S;
  /** Refuses the install before anything on the host changes; absent: nothing to check. */
  preflight?(
    transport: Transport,
    layout: HostLayout,
    service: S,
    signal?: AbortSignal,
    provision?: HostProvision,
  ): Promise<void>;
  /** Puts what the operator gave for this host (TLS files) and per-host secrets in place, before services start. */
  provision?(
    transport: Transport,
    layout: HostLayout,
    service: S,
    provision: HostProvision,
    signal?: AbortSignal,
  ): Promise<void>;
  /** Every port it listens on, for the check that they are free; absent: `port`. */
  ports?(service: S): number[];
  start(transport: Transport, service: S, context: StartContext): Promise<void>;
  /** Shell lines that stop it, whichever way it was started; stopping what does not run succeeds. */
  stopScript(service: S, layout: HostLayout): string;
  /**
   * The HTTP path that answers 200 once it is up; null for a service that speaks no HTTP
   * (a database): then a TCP connection it accepts on its port is its health.
   */
  healthPath(service: S): string | null;
  /** A healthy service's own checks (model listed, chat, embeddings, RAG canary). */
  verify(
    transport: Transport,
    service: S,
    spec: VerifySpec,
    signal?: AbortSignal,
    layout?: HostLayout,
  ): Promise<ServiceCheck[]>;
  /** Checks of what it recorded during verification (the RAG audit log); absent: none. */
  verifyRecords?(
    transport: Transport,
    root: string,
    service: S,
    signal?: AbortSignal,
  ): Promise<ServiceCheck[]>;
  /** What `apertus status` should warn about in how it runs (plain HTTP on the network); absent: nothing. */
  warnings?(service: S): string[];
  /** Its entry in the install report. */
  report(service: S): ServiceReportEntry;
  /** One phrase for `apertus inspect`: what it serves or runs. */
  summary(service: S): string;
}

/** http://127.0.0.1:PORT: where a service answers the others on the host. */
export function loopbackUrlOf(port: number): string {
  return `http://127.0.0.1:${port}`;
}

/** Issue for a component that is missing or of the wrong kind. */
export function componentIssue(
  path: FieldIssue['path'],
  name: string,
  kind: string | undefined,
  names: readonly string[],
): FieldIssue {
  return {
    path,
    message: `no ${kind === undefined ? '' : `${kind} `}component named "${name}" (components: ${names.join(', ') || 'none'})`,
  };
}
