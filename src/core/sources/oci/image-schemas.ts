/**
 * zod schemas for the image documents a registry returns (image-spec manifest.md,
 * image-index.md, config.md; Docker's schema 2 has the same shape). Only the fields apertus
 * reads are checked; unknown fields pass through untouched, since manifests are stored byte
 * for byte and never re-serialised.
 */
import { z } from 'zod';

const digest = z.string().regex(/^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/, 'expected a digest');
const size = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const imageDescriptorSchema = z.object({
  mediaType: z.string().min(1),
  digest,
  size,
  annotations: z.record(z.string(), z.string()).optional(),
  urls: z.array(z.string()).optional(),
  platform: z
    .object({
      os: z.string(),
      architecture: z.string(),
      variant: z.string().optional(),
    })
    .optional(),
});
export type ImageDescriptor = z.infer<typeof imageDescriptorSchema>;

export const imageIndexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(imageDescriptorSchema),
});
export type ImageIndex = z.infer<typeof imageIndexSchema>;

export const imageManifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: imageDescriptorSchema,
  layers: z.array(imageDescriptorSchema),
});
export type ImageManifest = z.infer<typeof imageManifestSchema>;

const stringList = z.array(z.string()).nullable().optional();

export const imageConfigSchema = z.object({
  architecture: z.string().optional(),
  os: z.string().optional(),
  variant: z.string().optional(),
  config: z
    .object({
      Env: stringList,
      Entrypoint: stringList,
      Cmd: stringList,
      Labels: z.record(z.string(), z.string()).nullable().optional(),
    })
    .nullable()
    .optional(),
  rootfs: z.object({ type: z.string(), diff_ids: z.array(z.string()) }).optional(),
});
export type ImageConfig = z.infer<typeof imageConfigSchema>;
