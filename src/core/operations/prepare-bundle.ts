/**
 * A bundle made ready for host commands, once per run: opened once, every byte verified
 * once, here or (deferContents) by install as it sends the blob (checksums, manifest graph, every field that becomes a path, a name, an argument
 * or a port), its signature material kept for the host to judge against its own trust
 * store, and what the hosts are checked for (the check subject: models, ports, disk).
 * Install and fleet runs take it; nothing here touches a host.
 */
import { ApertusError } from '../errors.js';
import { assertAdapterBase } from '../layout/adapter-base.js';
import type { BundleReader } from '../layout/bundle-reader.js';
import type { LoadedBundle } from '../layout/load-bundle.js';
import { blobPath } from '../layout/names.js';
import { noProgress, type RunOptions } from '../progress.js';
import type { BundleSignature } from '../target/trust-store.js';
import { type BundleVerification, PASSING_STATUSES, verifyBundleKeepOpen } from '../verify/verify-bundle.js';
import { type CheckSubject, subjectFromOpenBundle } from './check-subject.js';

/** With deferContents, files at least this large are hashed as they are sent, not here. */
const DEFER_FROM_BYTES = 1 << 20;

export interface PreparedBundle {
  path: string;
  reader: BundleReader;
  bundle: LoadedBundle;
  verification: BundleVerification;
  signature: BundleSignature;
  subject: CheckSubject;
  /** Image configs by image component name (their Env carries CUDA_VERSION). */
  imageConfigs: ReadonlyMap<string, unknown>;
  /**
   * Blobs whose bytes this run has hashed on this side and found right: when verified here,
   * or once a transfer to a host has hashed them as it sent them. Later hosts of a fleet
   * send them without hashing again (the host still hashes what arrives).
   */
  hashed: Set<string>;
  close(): Promise<void>;
}

export interface PrepareOptions extends RunOptions {
  /** Require the signature to verify with this key on the operator's side too (`verify --key`). */
  publicKeyPath?: string | undefined;
  /** The progress step verification reports under. */
  step?: string;
  /**
   * Leave the blobs' contents unhashed here (the metadata, the signed list and each blob's
   * listing are still checked): install hashes each blob as it sends it, and the host
   * re-hashes the blobs it already has before a release links them.
   */
  deferContents?: boolean | undefined;
}

/**
 * Each adapter's base is in the bundle, as the adapter pins it: a bundle put together by
 * hand (or edited and signed again) must not serve a LoRA over weights it was not made for.
 */
export function assertBundleAdapterBases(bundle: LoadedBundle): void {
  const layers = new Map(bundle.components.map((c) => [c.name, c.layers]));
  const candidates = bundle.config.components.map((c) => ({
    name: c.name,
    kind: c.kind,
    revision: c.provenance.revision,
    layers: layers.get(c.name) ?? [],
  }));
  for (const component of bundle.config.components) {
    if (component.base !== undefined)
      assertAdapterBase({ name: component.name, base: component.base }, candidates, 'the bundle');
  }
}

/** Verifies and opens the bundle; throws 'bundle-invalid' (exit 1) naming each bad item, before any host is touched. */
export async function prepareBundle(path: string, options: PrepareOptions = {}): Promise<PreparedBundle> {
  const onProgress = options.onProgress ?? noProgress;
  const step = options.step ?? 'verify-bundle';
  const { verification, opened } = await verifyBundleKeepOpen(path, {
    publicKeyPath: options.publicKeyPath,
    // Small files stay hashed here: configs and the like are read before they are sent.
    deferFromBytes: options.deferContents ? DEFER_FROM_BYTES : undefined,
    ...(options.signal ? { signal: options.signal } : {}),
    onProgress: (event) => onProgress({ ...event, step }),
  });
  const bad = verification.results.filter((r) => !PASSING_STATUSES.has(r.status));
  if (!verification.ok || bad.length > 0 || opened?.bundle === undefined) {
    await opened?.reader.close();
    throw new ApertusError(
      'bundle-invalid',
      `The bundle failed verification; nothing was sent to any host:\n${bad.map((r) => `  ${r.subject}: ${r.status}${r.detail ? ` (${r.detail})` : ''}`).join('\n')}`,
      {
        kind: 'operation',
        hint: 'Copy the bundle (or the bad part) again from its source medium, then run `apertus verify` on it. A field named above that fails its rule means the bundle was not written by apertus or was altered: do not install it.',
        details: { verification: verification.results },
      },
    );
  }
  const { reader, bundle } = opened;
  try {
    assertBundleAdapterBases(bundle);
    const subject = await subjectFromOpenBundle(reader, bundle);
    const imageConfigs = new Map<string, unknown>();
    for (const component of bundle.components.filter((c) => c.kind === 'image')) {
      imageConfigs.set(component.name, await reader.readJson(blobPath(component.config.digest)));
    }
    return {
      path,
      reader,
      bundle,
      verification,
      signature: { sums: opened.sums, text: opened.signatureText, keyId: verification.keyId },
      subject,
      imageConfigs,
      hashed: new Set(
        [...bundle.blobs]
          .filter(
            ([digest, size]) =>
              !bundle.omitted.has(digest) && !(options.deferContents && size >= DEFER_FROM_BYTES),
          )
          .map(([digest]) => digest),
      ),
      close: () => reader.close(),
    };
  } catch (error) {
    await reader.close();
    throw error;
  }
}
