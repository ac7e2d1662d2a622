import { ApertusError } from '../errors.js';
import type { Transport } from '../host/transport.js';
import type { InstallPlan } from '../operations/install-plan.js';
import { imageArchiveScript } from '../sources/oci/image-archive.js';
import type { HostLayout } from './layout.js';

/**
 * Loads each image component into the host's podman (else docker) from the blob store:
 * an OCI layout + docker manifest.json linked together from the store, then `podman load`
 * (runtime-facts §5.3). Runs after staging, before services start.
 */
export async function loadImages(
  transport: Transport,
  layout: HostLayout,
  plan: InstallPlan,
  signal?: AbortSignal,
): Promise<string[]> {
  const loaded: string[] = [];
  for (const image of plan.images) {
    const script = imageArchiveScript(
      { manifest: image.manifest, config: image.config, layers: image.layers, repoTags: image.repoTags },
      { blobDir: layout.blobDir, archiveDir: image.archiveDir, load: 'auto' },
    );
    const result = await transport.exec('sh -s', { stdin: script, signal, reject: false });
    if (result.exitCode !== 0) {
      throw new ApertusError(
        'install-image-load-failed',
        `Loading image ${image.repoTags[0] ?? image.manifest.digest} (component ${image.component}) failed with exit code ${result.exitCode}: ${result.stderr.trim().slice(-500)}`,
        {
          kind: 'operation',
          hint:
            result.exitCode === 127
              ? 'Install podman (or docker) on the host, then run the install again.'
              : 'Check the container engine on the host (`podman info`), then run the install again.',
        },
      );
    }
    loaded.push(...image.repoTags);
  }
  return loaded;
}
