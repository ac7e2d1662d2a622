/**
 * zod schemas for the JSON documents of a bundle: index.json, manifests and the
 * bundle config. Each is typed against src/core/layout/types.ts, so the two cannot
 * drift apart without the type check failing.
 *
 * The config is held to the rules its recipe was (src/core/spec/safe-values.ts): every
 * name, version, path, id, port and argument that reaches a host is checked here, when
 * the bundle is loaded, before anything on a host changes. Services are each kind's own
 * schema, from the runtime registry.
 */
import { z } from 'zod';
import { evalSpecSchema } from '../eval/eval-set.js';
import type { BundleView } from '../runtimes/adapter.js';
import { adapterOf, serviceSpecSchema } from '../runtimes/registry.js';
import {
  answerPattern,
  componentPath,
  LIMITS,
  oneLineText,
  promptText,
  resourceName,
  uniquenessIssues,
  versionString,
} from '../spec/safe-values.js';
import { MEDIA_TYPE } from './media-types.js';
import type { BundleConfig, ComponentKind, Descriptor, VerifySpec } from './types.js';

export { describeIssues } from '../spec/zod-issues.js';

const digest = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected "sha256:" and 64 lowercase hex digits');
const size = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const descriptorSchema: z.ZodType<Descriptor> = z.object({
  mediaType: z.string().min(1),
  digest,
  size,
  artifactType: z.string().min(1).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export const ociIndexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.literal(MEDIA_TYPE.ociIndex).optional(),
  manifests: z.array(descriptorSchema),
});
export type OciIndex = z.infer<typeof ociIndexSchema>;

export const ociManifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.literal(MEDIA_TYPE.ociManifest),
  artifactType: z.string().min(1).optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
  annotations: z.record(z.string(), z.string()).optional(),
});
export type OciManifest = z.infer<typeof ociManifestSchema>;

/** What a reader needs of a ModelPack model config (docs/config.md): the layers' DiffIDs. */
export const modelConfigSchema = z.object({
  descriptor: z.object({}).passthrough(),
  modelfs: z.object({ type: z.literal('layers'), diffIds: z.array(digest) }),
});

/**
 * An image component's manifest is the image's own, OCI or Docker schema 2, as pulled
 * (an OCI manifest need not name its media type: its descriptor does).
 */
export const imageComponentManifestSchema = ociManifestSchema.extend({
  mediaType: z.enum([MEDIA_TYPE.ociManifest, MEDIA_TYPE.dockerManifest]).optional(),
});

export const componentKindSchema: z.ZodType<ComponentKind> = z.enum([
  'model',
  'adapter',
  'runtime',
  'files',
  'image',
  'wheels',
]);

const verifySpecSchema: z.ZodType<VerifySpec> = z.object({
  chat: z.object({ prompt: promptText, maxTokens: LIMITS.maxTokens }),
  embeddings: z.object({ input: promptText, dimension: LIMITS.dimension }).nullable(),
  golden: z
    .array(
      z.object({
        name: resourceName,
        service: resourceName,
        prompt: promptText,
        maxTokens: LIMITS.maxTokens,
        temperature: LIMITS.temperature,
        expect: answerPattern,
      }),
    )
    .optional(),
  eval: evalSpecSchema.optional(),
});

/** Provenance and requirement strings: shown to people, never run. */
const note = oneLineText(4096);

/**
 * The newest bundle format this build reads and writes; older ones stay readable.
 * 1: model components are apertus artifacts (`application/vnd.apertus.file.v1` layers, empty config).
 * 2: model components are CNCF ModelPack v1 artifacts; every component has a ref name in index.json.
 */
export const CURRENT_FORMAT_VERSION = 2;

export const bundleConfigSchema: z.ZodType<BundleConfig> = z
  .object({
    formatVersion: z.union([z.literal(1), z.literal(2)]),
    name: resourceName,
    version: versionString,
    description: oneLineText(),
    recipe: z.object({ digest, path: componentPath }),
    components: z.array(
      z.object({
        name: resourceName,
        kind: componentKindSchema,
        manifest: descriptorSchema,
        provenance: z.object({
          source: note,
          revision: note.optional(),
          license: note.optional(),
          url: note.optional(),
          platform: note.optional(),
          index: note.optional(),
          python: note.optional(),
          platforms: z.array(note).optional(),
        }),
        base: z
          .object({ component: resourceName, revision: note.optional(), digest: digest.optional() })
          .optional(),
      }),
    ),
    services: z.array(serviceSpecSchema),
    verify: verifySpecSchema,
    requirements: z.object({
      diskBytes: size,
      minVramBytes: size.optional(),
      computeCapability: note.optional(),
      driver: note.optional(),
    }),
    delta: z
      .object({
        base: z.object({ name: resourceName, version: versionString, manifestDigest: digest }).nullable(),
        omitted: z.array(z.object({ digest, size })),
      })
      .optional(),
  })
  .superRefine((config, ctx) => {
    const issue = (path: Array<string | number>, message: string) =>
      ctx.addIssue({ code: 'custom', path, message });
    for (const found of uniquenessIssues(config.components, config.services))
      issue(found.path, found.message);
    // Which base an adapter has is judged with the rest of the bundle (layout/adapter-base.ts).
    config.components.forEach((component, i) => {
      if ((component.kind === 'adapter') !== (component.base !== undefined)) {
        issue(['components', i, 'base'], 'an adapter names its base model, and only an adapter does');
      }
    });
    const kinds = new Map(config.components.map((c) => [c.name, c.kind]));
    const bases = new Map(config.components.map((c) => [c.name, c.base?.component]));
    const names = new Set(config.services.map((s) => s.name));
    const ports = new Map(config.services.map((s) => [s.port, s.name]));
    const view: BundleView = {
      componentKind: (name) => kinds.get(name),
      componentNames: [...kinds.keys()],
      adapterBase: (name) => bases.get(name),
      serviceNames: [...names],
      serviceOnPort: (port) => ports.get(port),
    };
    config.services.forEach((service, i) => {
      for (const found of adapterOf(service).checkBundle(service, view)) {
        issue(['services', i, ...found.path], found.message);
      }
    });
    (config.verify.eval?.sets ?? []).forEach((set, i) => {
      if (!names.has(set.service)) {
        issue(
          ['verify', 'eval', 'sets', i, 'service'],
          `no service named "${set.service}" (services: ${[...names].join(', ')})`,
        );
      }
    });
    (config.verify.golden ?? []).forEach((golden, i) => {
      if (!names.has(golden.service)) {
        issue(
          ['verify', 'golden', i, 'service'],
          `no service named "${golden.service}" (services: ${[...names].join(', ')})`,
        );
      }
    });
  });
