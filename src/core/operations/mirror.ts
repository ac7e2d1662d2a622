/**
 * `apertus mirror`: pushes every component of a bundle into a registry inside the gap, with
 * digests unchanged, so the enclave's own registry serves what the bundle carries: images
 * under their source's repository and tag, models as ModelPack artifacts, the other
 * components and the bundle manifest itself as OCI artifacts. Blobs the registry already
 * has (HEAD) are not sent again; manifests are PUT as stored, byte for byte, under their tag
 * and by digest. Credentials are those of `oci:` sources (registry-credentials.ts).
 */
import { ApertusError } from '../errors.js';
import { type BundleReader, openBundle } from '../layout/bundle-reader.js';
import { type LoadedBundle, loadBundle } from '../layout/load-bundle.js';
import { MEDIA_TYPE } from '../layout/media-types.js';
import { blobPath } from '../layout/names.js';
import type { Descriptor } from '../layout/types.js';
import { noProgress, type RunOptions } from '../progress.js';
import { parseOciReference } from '../sources/oci/parse-oci-reference.js';
import { createRegistryClient, type RegistryClient } from '../sources/oci/registry-client.js';
import type { SourceContext } from '../sources/types.js';

export interface MirrorOptions extends RunOptions {
  /** REGISTRY[/PREFIX]: '127.0.0.1:5000/models' or 'registry.internal/apertus'. */
  to: string;
  /** Plain HTTP to the registry (a lab registry without TLS). */
  insecure?: boolean;
  env: SourceContext['env'];
}

export interface MirroredManifest {
  /** The component name, or the bundle's name for the bundle manifest. */
  name: string;
  kind: string;
  /** REGISTRY/REPOSITORY:TAG@DIGEST, what `skopeo copy docker://…` takes. */
  reference: string;
  repository: string;
  tag: string;
  digest: string;
  blobs: { pushed: number; present: number; bytesPushed: number };
}

export interface MirrorResult {
  registry: string;
  bundle: { name: string; version: string; manifestDigest: string };
  manifests: MirroredManifest[];
  bytesPushed: number;
}

/** The repository and tag a component gets under the prefix. */
export function mirrorTarget(
  bundle: Pick<LoadedBundle['config'], 'name' | 'version'>,
  component: { name: string; kind: string; provenance: { source: string; revision?: string } } | undefined,
  prefix: string,
): { repository: string; tag: string } {
  const under = (path: string) => [prefix, path].filter((part) => part !== '').join('/');
  const source = component?.provenance.source ?? '';
  if (component === undefined) return { repository: under(repositoryPath(bundle.name)), tag: bundle.version };
  if (source.startsWith('oci:')) {
    const reference = parseOciReference(source);
    return { repository: under(reference.repository), tag: reference.tag ?? bundle.version };
  }
  const hf = /^hf:\/\/([^@]+)@([0-9a-f]{40})$/.exec(source);
  if (hf?.[1] !== undefined && hf[2] !== undefined) {
    return { repository: under(repositoryPath(hf[1])), tag: hf[2] };
  }
  return {
    repository: under(`${repositoryPath(bundle.name)}/${repositoryPath(component.name)}`),
    tag: bundle.version,
  };
}

/** A name as a registry path: lowercase, and only the separators the distribution spec allows. */
function repositoryPath(name: string): string {
  return name
    .split('/')
    .map((part) =>
      part
        .toLowerCase()
        .replace(/[^a-z0-9._-]+/g, '-')
        .replace(/^[._-]+|[._-]+$/g, '')
        .replace(/[._-]{2,}/g, '-'),
    )
    .filter((part) => part !== '')
    .join('/');
}

export function parseMirrorTarget(to: string, insecure: boolean): { registry: string; prefix: string } {
  const slash = to.indexOf('/');
  const registry = slash < 0 ? to : to.slice(0, slash);
  const prefix = slash < 0 ? '' : to.slice(slash + 1).replace(/\/+$/, '');
  const shown = JSON.stringify(to.includes('@') ? to.replace(/^[^/]*@/, '***@') : to);
  const invalid = (
    why: string,
    hint = 'Write it as REGISTRY[/PREFIX], e.g. registry.internal:5000/apertus.',
  ) => new ApertusError('mirror-target-invalid', `--to ${shown} ${why}.`, { hint });
  if (to.includes('@')) {
    throw invalid(
      'holds credentials or a digest',
      'Give credentials in APERTUS_REGISTRY_USERNAME and APERTUS_REGISTRY_PASSWORD (or `podman login`), never in the name.',
    );
  }
  if (!registry.includes('.') && !registry.includes(':') && registry !== 'localhost') {
    throw invalid('does not start with a registry host');
  }
  try {
    // The same rules as an oci: source: a host, then lowercase path components.
    parseOciReference(`oci:${registry}/${prefix === '' ? 'x' : `${prefix}/x`}`, { insecure });
  } catch (error) {
    if (!(error instanceof ApertusError)) throw error;
    throw invalid(
      `is not a registry and path: ${error.message.replace(/^The source .*? is not valid: /, '').replace(/\.$/, '')}`,
      error.hint ?? undefined,
    );
  }
  return { registry, prefix };
}

export async function mirrorBundle(path: string, options: MirrorOptions): Promise<MirrorResult> {
  const onProgress = options.onProgress ?? noProgress;
  const insecure = options.insecure ?? false;
  const { registry, prefix } = parseMirrorTarget(options.to, insecure);
  const reader = await openBundle(path, options.signal ? { signal: options.signal } : {});
  try {
    const bundle = await loadBundle(reader);
    const { config } = bundle;
    const plans: Array<{
      name: string;
      kind: string;
      manifest: Descriptor;
      target: { repository: string; tag: string };
    }> = config.components.map((component) => ({
      name: component.name,
      kind: component.kind,
      manifest: component.manifest,
      target: mirrorTarget(config, component, prefix),
    }));
    const bundleEntry = bundle.index.manifests.find((entry) => entry.digest === bundle.manifestDigest);
    plans.push({
      name: config.name,
      kind: 'bundle',
      manifest: bundleEntry ?? { mediaType: MEDIA_TYPE.ociManifest, digest: bundle.manifestDigest, size: 0 },
      target: mirrorTarget(config, undefined, prefix),
    });
    const totalBytes = plans.reduce(
      (sum, plan) => sum + blobsOf(bundle, plan.manifest.digest).reduce((s, b) => s + b.size, 0),
      0,
    );
    let done = 0;
    const manifests: MirroredManifest[] = [];
    for (const plan of plans) {
      options.signal?.throwIfAborted();
      const reference = parseOciReference(`oci:${registry}/${plan.target.repository}:${plan.target.tag}`, {
        insecure,
      });
      const client = await createRegistryClient({ reference, env: options.env, push: true });
      onProgress({
        step: 'mirror',
        status: 'start',
        component: plan.name,
        detail: `${plan.name} -> ${registry}/${plan.target.repository}:${plan.target.tag}`,
      });
      const counts = { pushed: 0, present: 0, bytesPushed: 0 };
      try {
        for (const blob of blobsOf(bundle, plan.manifest.digest)) {
          options.signal?.throwIfAborted();
          if (await client.hasBlob(blob.digest, options.signal)) {
            counts.present += 1;
          } else {
            await pushBlob(client, reader, bundle, blob, options.signal, (bytes) => {
              onProgress({
                step: 'mirror',
                status: 'info',
                component: plan.name,
                bytes: { done: done + bytes, total: totalBytes, received: bytes },
              });
            });
            counts.pushed += 1;
            counts.bytesPushed += blob.size;
          }
          done += blob.size;
          onProgress({
            step: 'mirror',
            status: 'info',
            component: plan.name,
            bytes: { done, total: totalBytes },
          });
        }
        const bytes = await reader.readBytes(blobPath(plan.manifest.digest));
        const mediaType = manifestMediaType(bytes, plan.manifest.mediaType);
        await client.putManifest(plan.target.tag, { mediaType, bytes }, options.signal);
        const digest = await client.putManifest(plan.manifest.digest, { mediaType, bytes }, options.signal);
        if (digest !== plan.manifest.digest) {
          throw new ApertusError(
            'mirror-digest-changed',
            `manifest ${plan.manifest.digest} hashes to ${digest}`,
            {
              kind: 'operation',
              hint: `Run \`apertus verify ${reader.path}\`, then copy the bundle again.`,
            },
          );
        }
      } catch (error) {
        if (!options.signal?.aborted)
          onProgress({
            step: 'mirror',
            status: 'fail',
            component: plan.name,
            detail: client.redact((error as Error).message),
          });
        throw error;
      }
      const name = `${registry}/${plan.target.repository}`;
      manifests.push({
        name: plan.name,
        kind: plan.kind,
        reference: `${name}:${plan.target.tag}@${plan.manifest.digest}`,
        repository: name,
        tag: plan.target.tag,
        digest: plan.manifest.digest,
        blobs: counts,
      });
      onProgress({
        step: 'mirror',
        status: 'ok',
        component: plan.name,
        detail: `${name}:${plan.target.tag} ${plan.manifest.digest} (${counts.pushed} blobs sent, ${counts.present} already there)`,
      });
    }
    return {
      registry,
      bundle: { name: config.name, version: config.version, manifestDigest: bundle.manifestDigest },
      manifests,
      bytesPushed: manifests.reduce((sum, m) => sum + m.blobs.bytesPushed, 0),
    };
  } finally {
    await reader.close();
  }
}

/** The blobs a manifest references (config, then layers), each once, from the loaded graph. */
function blobsOf(bundle: LoadedBundle, manifestDigest: string): Descriptor[] {
  const out = new Map<string, Descriptor>();
  if (manifestDigest === bundle.manifestDigest) {
    for (const blob of [bundle.manifest.config, ...bundle.manifest.layers]) out.set(blob.digest, blob);
  } else {
    const component = bundle.components.find((c) => c.manifestDigest === manifestDigest);
    for (const blob of [component?.config, ...(component?.layers ?? [])])
      if (blob) out.set(blob.digest, blob);
  }
  return [...out.values()];
}

async function pushBlob(
  client: RegistryClient,
  reader: BundleReader,
  bundle: LoadedBundle,
  blob: Descriptor,
  signal: AbortSignal | undefined,
  onBytes: (bytes: number) => void,
): Promise<void> {
  const entry = reader.get(blobPath(blob.digest));
  if (entry === undefined) {
    const leftOut = bundle.omitted.has(blob.digest);
    throw new ApertusError(
      'mirror-blob-missing',
      `${reader.path} lacks ${blob.digest}${leftOut ? ' (a delta bundle leaves it out)' : ''}, and the registry does not have it.`,
      {
        kind: 'operation',
        hint: leftOut
          ? 'Mirror the base bundle first (its blobs are then in the registry), then this delta.'
          : `Run \`apertus verify ${reader.path}\`, then copy the bundle again.`,
      },
    );
  }
  await client.pushBlob(
    { digest: blob.digest, size: blob.size },
    () => countBytes(reader.createReadStream(entry), onBytes),
    signal,
  );
}

async function* countBytes(
  stream: AsyncIterable<unknown>,
  onBytes: (bytes: number) => void,
): AsyncIterable<Uint8Array> {
  let sent = 0;
  let reported = 0;
  for await (const chunk of stream) {
    const bytes = chunk as Buffer;
    sent += bytes.length;
    if (sent - reported >= 32 << 20) {
      reported = sent;
      onBytes(sent);
    }
    yield bytes;
  }
}

/** A manifest's own mediaType (an image's may be Docker's), else its descriptor's. */
function manifestMediaType(bytes: Buffer, fallback: string): string {
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as { mediaType?: unknown };
    return typeof parsed.mediaType === 'string' ? parsed.mediaType : fallback;
  } catch {
    return fallback;
  }
}
