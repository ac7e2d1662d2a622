/**
 * The runtime registry (STYLE.md 16): one adapter per kind, the recipe and bundle schemas
 * built from it, and every recipe apertus ships resolving into services the bundle loader
 * accepts, so bundles written before the stricter rules still load.
 */
import { describe, expect, it, vi } from 'vitest';
import { bundleConfigSchema, describeIssues } from '../../src/core/layout/bundle-schemas.js';
import { sha256Digest } from '../../src/core/layout/manifests.js';
import type { BundleConfig, ServiceSpec } from '../../src/core/layout/types.js';
import { needsRuntimeComponent, RUNTIMES } from '../../src/core/runtimes/registry.js';
import { serviceModelId } from '../../src/core/runtimes/release-health.js';
import { resolveServices, resolveVerify } from '../../src/core/runtimes/resolve-services.js';
import { loadRecipe } from '../../src/core/spec/load-recipe.js';
import { recipeJsonSchema, recipeSchema } from '../../src/core/spec/recipe-schema.js';
import { servedFiles } from '../helpers/served-files.js';

const SHIPPED = [
  'bundles/demo',
  'bundles/apertus-8b-rag',
  'bundles/apertus-8b-pgvector',
  'bundles/apertus-70b',
];

/** The bundle config write-bundle.ts would write for a recipe, with stand-in manifest digests. */
async function configOf(dir: string): Promise<BundleConfig> {
  const loaded = await loadRecipe(dir);
  const { recipe } = loaded;
  const components = recipe.components.map((c) => ({
    name: c.name,
    kind: c.kind,
    source: c.source,
    ...(c.base ? { base: c.base } : {}),
  }));
  if (needsRuntimeComponent(recipe.services))
    components.push({ name: 'runtime', kind: 'runtime' as never, source: 'node' });
  return {
    formatVersion: 1,
    name: recipe.metadata.name,
    version: recipe.metadata.version,
    description: recipe.metadata.description,
    recipe: { digest: sha256Digest(loaded.bytes), path: 'apertus.yaml' },
    components: components.map((c) => ({
      name: c.name,
      kind: c.kind,
      manifest: {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: sha256Digest(Buffer.from(c.name)),
        size: 1,
      },
      provenance: { source: c.source },
      ...('base' in c ? { base: c.base } : {}),
    })),
    services: resolveServices(recipe, loaded.file, servedFiles(recipe)),
    verify: resolveVerify(recipe),
    requirements: { diskBytes: 0 },
  };
}

describe('the runtime registry', () => {
  it('loads before the schemas built from it (no import cycle through the adapters)', async () => {
    vi.resetModules();
    const registry = await import('../../src/core/runtimes/registry.js');
    const schemas = await import('../../src/core/layout/bundle-schemas.js');
    const recipes = await import('../../src/core/spec/recipe-schema.js');
    expect(registry.RUNTIMES.map((r) => r.runtime)).toEqual(RUNTIMES.map((r) => r.runtime));
    // A cycle leaves the schemas built from a registry not yet loaded: they would not parse.
    const config = await configOf('bundles/demo');
    expect(schemas.bundleConfigSchema.safeParse(config).success).toBe(true);
    expect(schemas.bundleConfigSchema.safeParse({ ...config, name: '..' }).success).toBe(false);
    expect(recipes.recipeSchema.safeParse((await loadRecipe('bundles/demo')).recipe).success).toBe(true);
  });

  it('has one adapter per kind, and the recipe JSON Schema offers exactly the registered kinds', () => {
    const kinds = RUNTIMES.map((r) => r.runtime);
    expect(new Set(kinds).size).toBe(kinds.length);
    const schema = recipeJsonSchema() as {
      properties: { services: { items: { oneOf?: Array<{ properties: { runtime: { const: string } } }> } } };
    };
    const offered = (schema.properties.services.items.oneOf ?? []).map((s) => s.properties.runtime.const);
    expect(offered.sort()).toEqual([...kinds].sort());
  });

  it('refuses a service of a kind no adapter registers, in a recipe and in a bundle', async () => {
    const recipe = recipeSchema.safeParse({
      apiVersion: 'apertus.dev/v1',
      kind: 'Bundle',
      metadata: { name: 'x', version: '1' },
      components: [{ name: 'm', kind: 'model', source: 'file:m' }],
      services: [{ name: 'gw', runtime: 'sglang', port: 18443 }],
    });
    expect(recipe.success ? [] : recipe.error.issues.map((i) => i.path.join('.'))).toEqual([
      'services.0.runtime',
    ]);
    const config = await configOf('bundles/demo');
    const bundle = bundleConfigSchema.safeParse({
      ...config,
      services: [{ name: 'gw', runtime: 'sglang', port: 18443 }],
    });
    expect(bundle.success ? '' : describeIssues(bundle.error)).toMatch(/^services\.0\.runtime: /);
  });

  it('says which apertus to use for a release record of a kind it does not run', () => {
    // Release records are read back from the host as written, without the bundle schema.
    const record = JSON.parse('{"name":"gw","runtime":"sglang","port":18443}') as ServiceSpec;
    expect(() => serviceModelId(record)).toThrow(
      expect.objectContaining({
        code: 'service-invalid',
        kind: 'operation',
        hint: expect.stringMatching(/version/),
      }),
    );
  });

  it.each(SHIPPED)('%s resolves into a bundle config the loader accepts', async (dir) => {
    const config = await configOf(dir);
    const parsed = bundleConfigSchema.safeParse(config);
    expect(parsed.success ? 'valid' : describeIssues(parsed.error)).toBe('valid');
  });

  it('the shipped recipes use every registered kind', async () => {
    const used = new Set<string>();
    for (const dir of SHIPPED) for (const s of (await configOf(dir)).services) used.add(s.runtime);
    expect([...used].sort()).toEqual(RUNTIMES.map((r) => r.runtime).sort());
  });
});
