/**
 * The CycloneDX 1.6 SBOM of a bundle, assembled while the bundle is written (write-bundle.ts
 * stores it as a layer of the bundle manifest, so SHA256SUMS and the signature cover it).
 *
 * Top level: one component per bundle component. The model is a `machine-learning-model`
 * (purl `pkg:huggingface/...@<commit>` for hf: sources, a model card with its file format
 * and architecture), a LoRA adapter is one too, with a dependency on its base model and
 * properties naming the base and its pin, images are `container`s (purl `pkg:oci/...@sha256:...`), and the
 * runtime, files and wheels components hold what they carry as nested components: every
 * file with its SHA-256, the npm packages inside tar layers (`pkg:npm/...`, with
 * licences), wheels (`pkg:pypi/...`) and the Node binary.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { CliFiles } from '../bundle/cli-files.js';
import type { BundleWritePlan, PlannedComponent } from '../bundle/write-bundle.js';
import { type Blob, blobOf } from '../layout/manifests.js';
import { layerFilePath, layerPlacement, MEDIA_TYPE } from '../layout/media-types.js';
import type { BundleConfig, Descriptor } from '../layout/types.js';
import { PROJECT_ROOT } from '../project-root.js';
import { parseOciReference } from '../sources/oci/parse-oci-reference.js';
import { cliComponent } from './cli-component.js';
import {
  CYCLONEDX_SPEC_VERSION,
  type CycloneDxBom,
  type CycloneDxComponent,
  type CycloneDxComponentType,
  type CycloneDxProperty,
  finishBom,
  sha256Hash,
} from './cyclonedx.js';
import { npmLibraryComponent } from './npm-component.js';
import { shippedNpmPackages } from './npm-packages.js';
import { huggingFacePurl, ociPurl, pypiPurl } from './purl.js';
import { cycloneDxLicenses } from './spdx-license.js';
import { parseWheelFileName } from './wheel-file-name.js';

export interface SbomInput {
  name: string;
  version: string;
  description: string;
  recipe: Descriptor;
  components: Array<{
    planned: PlannedComponent;
    entry: BundleConfig['components'][number];
    /** The layers as written (empty for images, whose layers are the image's own). */
    layers: Descriptor[];
  }>;
  /** The apertus CLI the bundle carries under apertus/, when it carries one. */
  cli?: CliFiles | undefined;
}

const TOP_LEVEL_TYPE: Record<PlannedComponent['kind'], CycloneDxComponentType> = {
  model: 'machine-learning-model',
  adapter: 'machine-learning-model',
  image: 'container',
  runtime: 'application',
  wheels: 'library',
  files: 'data',
};

/** Model config files are a few KB; a larger one is not read for the model card. */
const MAX_MODEL_CONFIG_BYTES = 1 << 20;

export async function buildBundleSbom(input: SbomInput): Promise<CycloneDxBom> {
  const bundleRef = `bundle:${input.name}@${input.version}`;
  const components: CycloneDxComponent[] = [];
  for (const component of input.components) components.push(await topLevelComponent(component));
  if (input.cli) components.push(await cliComponent(input.cli));
  const tool = await apertusTool();
  return finishBom({
    bomFormat: 'CycloneDX',
    specVersion: CYCLONEDX_SPEC_VERSION,
    version: 1,
    metadata: {
      tools: { components: [tool] },
      component: {
        type: 'application',
        'bom-ref': bundleRef,
        name: input.name,
        version: input.version,
        ...(input.description ? { description: input.description } : {}),
      },
      properties: [{ name: 'apertus:recipe-digest', value: input.recipe.digest }],
    },
    components,
    dependencies: [
      { ref: bundleRef, dependsOn: components.map((component) => component['bom-ref']) },
      // An adapter runs only over the base model it was trained on.
      ...input.components.flatMap(({ entry }) =>
        entry.base === undefined
          ? []
          : [{ ref: componentRef(entry.name), dependsOn: [componentRef(entry.base.component)] }],
      ),
    ],
  });
}

/** The SBOM as the blob stored in the bundle: pretty JSON, as people read it with `inspect --sbom`. */
export function sbomBlob(bom: CycloneDxBom): Blob {
  return blobOf(MEDIA_TYPE.sbom, Buffer.from(`${JSON.stringify(bom, null, 2)}\n`, 'utf8'));
}

/** What write-bundle.ts calls once every component is written: the plan, the config's components and their layers, in order. */
export async function bundleSbomBlob(
  plan: Pick<BundleWritePlan, 'name' | 'version' | 'description' | 'components'>,
  entries: BundleConfig['components'],
  layers: Descriptor[][],
  recipe: Descriptor,
  cli?: CliFiles,
): Promise<Blob> {
  const components = plan.components.map((planned, index) => {
    const entry = entries[index];
    if (entry === undefined || entry.name !== planned.name) {
      throw new TypeError(`SBOM: component ${planned.name} was not written`);
    }
    return { planned, entry, layers: layers[index] ?? [] };
  });
  return sbomBlob(
    await buildBundleSbom({
      name: plan.name,
      version: plan.version,
      description: plan.description,
      recipe,
      components,
      cli,
    }),
  );
}

async function topLevelComponent(component: SbomInput['components'][number]): Promise<CycloneDxComponent> {
  const { planned, entry } = component;
  const { provenance } = entry;
  const ref = componentRef(planned.name);
  const properties: CycloneDxProperty[] = [
    { name: 'apertus:component', value: planned.name },
    { name: 'apertus:kind', value: planned.kind },
    { name: 'apertus:source', value: provenance.source },
    { name: 'apertus:manifest-digest', value: entry.manifest.digest },
  ];
  if (entry.base !== undefined) {
    properties.push({ name: 'apertus:adapter-base', value: entry.base.component });
    if (entry.base.revision !== undefined)
      properties.push({ name: 'apertus:adapter-base-revision', value: entry.base.revision });
    if (entry.base.digest !== undefined)
      properties.push({ name: 'apertus:adapter-base-digest', value: entry.base.digest });
  }
  const licenses = cycloneDxLicenses(provenance.license);
  const base = {
    'bom-ref': ref,
    ...(licenses.length > 0 ? { licenses } : {}),
  };

  if (planned.kind === 'image') {
    const reference = parseOciReference(provenance.source);
    const digest = entry.manifest.digest;
    if (provenance.platform) properties.push({ name: 'apertus:platform', value: provenance.platform });
    return {
      type: 'container',
      ...base,
      name: `${reference.registry}/${reference.repository}`,
      version: reference.tag ?? digest,
      hashes: [sha256Hash(digest)],
      purl: ociPurl({
        registry: reference.registry,
        repository: reference.repository,
        digest,
        tag: reference.tag,
        platform: provenance.platform,
      }),
      properties,
    };
  }

  const nested = await nestedComponents(component, ref);
  const out: CycloneDxComponent = {
    type: TOP_LEVEL_TYPE[planned.kind],
    ...base,
    name: planned.name,
    ...(provenance.revision ? { version: provenance.revision } : {}),
    ...(provenance.url
      ? { externalReferences: [{ type: 'distribution' as const, url: provenance.url }] }
      : {}),
    components: nested,
    properties,
  };
  const hf = /^hf:(?:\/\/)?([^@\s]+)@([0-9a-f]{40})$/.exec(provenance.source);
  if (hf?.[1] !== undefined && hf[2] !== undefined) {
    const [group, ...rest] = hf[1].split('/');
    if (group !== undefined && rest.length > 0) {
      out.group = group;
      out.name = rest.join('/');
    }
    out.version = hf[2];
    out.purl = huggingFacePurl(
      hf[1],
      hf[2],
      provenance.url === undefined ? undefined : hubOf(provenance.url),
    );
  }
  const fileLayers = component.layers.filter((layer) => layerPlacement(layer.mediaType) === 'file');
  if (planned.kind === 'model' || planned.kind === 'adapter') {
    const only = fileLayers.length === 1 ? fileLayers[0] : undefined;
    if (only !== undefined) out.hashes = [sha256Hash(only.digest)];
    out.modelCard = await modelCard(planned, fileLayers);
  }
  return out;
}

function componentRef(name: string): string {
  return `component:${name}`;
}

/** 'https://hub.example/org/name/tree/<sha>' -> 'https://hub.example', for the purl's repository_url. */
function hubOf(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

async function nestedComponents(
  component: SbomInput['components'][number],
  parentRef: string,
): Promise<CycloneDxComponent[]> {
  const { planned } = component;
  const out: CycloneDxComponent[] = [];
  for (const layer of component.layers) {
    const title = layerFilePath(layer) ?? layer.digest;
    const ref = `${parentRef}/${title}`;
    const wheel = planned.kind === 'wheels' ? parseWheelFileName(title) : undefined;
    if (wheel !== undefined) {
      out.push({
        type: 'library',
        'bom-ref': ref,
        name: wheel.name,
        version: wheel.version,
        hashes: [sha256Hash(layer.digest)],
        purl: pypiPurl(wheel.name, wheel.version),
        properties: [{ name: 'apertus:file', value: title }],
      });
      continue;
    }
    if (planned.kind === 'runtime' && title === 'bin/node') {
      const version = /\bnode v?(\d+\.\d+\.\d+)\b/.exec(component.entry.provenance.source)?.[1];
      out.push({
        type: 'application',
        'bom-ref': ref,
        name: 'node',
        ...(version ? { version } : {}),
        description: 'Node.js, which runs the services apertus ships',
        hashes: [sha256Hash(layer.digest)],
        // Node.js itself is MIT (its LICENSE file); the binary also embeds V8, OpenSSL and others.
        licenses: cycloneDxLicenses('MIT'),
        externalReferences: [{ type: 'website', url: 'https://nodejs.org/' }],
        properties: [{ name: 'apertus:file', value: title }],
      });
      continue;
    }
    out.push({
      type: 'file',
      'bom-ref': ref,
      name: title,
      hashes: [sha256Hash(layer.digest)],
      ...(layer.mediaType === MEDIA_TYPE.tarLayer
        ? { properties: [{ name: 'apertus:layer', value: 'tar' }] }
        : {}),
    });
    if (layer.mediaType !== MEDIA_TYPE.tarLayer) continue;
    const tarLayer = planned.layers.find((candidate) => candidate.type === 'tar' && candidate.name === title);
    if (tarLayer?.type !== 'tar') continue;
    for (const npm of await shippedNpmPackages(tarLayer.entries)) {
      out.push(npmLibraryComponent(npm, ref, `${title}:${npm.path}`));
    }
  }
  return out;
}

const MODEL_FORMATS: ReadonlyArray<[RegExp, string]> = [
  [/\.gguf$/i, 'gguf'],
  [/\.safetensors$/i, 'safetensors'],
  [/\.(?:bin|pt|pth)$/i, 'pytorch'],
  [/\.onnx$/i, 'onnx'],
];

/** What the files say about the model: its weight format, and for Transformers models the architecture. */
async function modelCard(
  planned: PlannedComponent,
  fileLayers: Descriptor[],
): Promise<NonNullable<CycloneDxComponent['modelCard']>> {
  const titles = fileLayers.map((layer) => layerFilePath(layer) ?? '');
  const formats = new Set<string>();
  for (const title of titles) {
    for (const [pattern, format] of MODEL_FORMATS) if (pattern.test(title)) formats.add(format);
  }
  const properties: CycloneDxProperty[] = [...formats].sort().map((value) => ({ name: 'format', value }));
  const configLayer = planned.layers.find((layer) => layer.type === 'file' && layer.title === 'config.json');
  const config = configLayer?.type === 'file' ? await readModelConfig(configLayer.source) : undefined;
  const architecture = Array.isArray(config?.architectures) ? config.architectures[0] : undefined;
  const family = config?.model_type;
  const modelParameters = {
    ...(typeof family === 'string' ? { architectureFamily: family } : {}),
    ...(typeof architecture === 'string' ? { modelArchitecture: architecture } : {}),
  };
  return {
    ...(Object.keys(modelParameters).length > 0 ? { modelParameters } : {}),
    ...(properties.length > 0 ? { properties } : {}),
  };
}

async function readModelConfig(source: string): Promise<Record<string, unknown> | undefined> {
  try {
    if ((await stat(source)).size > MAX_MODEL_CONFIG_BYTES) return undefined;
    const value: unknown = JSON.parse(await readFile(source, 'utf8'));
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  } catch {
    // A config.json that is not JSON says nothing about the architecture; the bundle still ships it.
    return undefined;
  }
}

let toolVersion: Promise<string | undefined> | undefined;

/** apertus itself, as the tool that wrote the SBOM. */
async function apertusTool(): Promise<CycloneDxComponent> {
  toolVersion ??= readFile(path.join(PROJECT_ROOT, 'package.json'), 'utf8')
    .then((text) => (JSON.parse(text) as { version?: unknown }).version)
    .then((version) => (typeof version === 'string' ? version : undefined))
    .catch(() => undefined);
  const version = await toolVersion;
  return {
    type: 'application',
    'bom-ref': 'tool:apertus',
    name: 'apertus',
    ...(version ? { version } : {}),
  };
}
