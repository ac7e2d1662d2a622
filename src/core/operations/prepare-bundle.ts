/**
 * A bundle made ready for host commands, once per run: opened once, every byte verified
 * once (checksums, manifest graph, every field that becomes a path, a name, an argument
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

export interface PreparedBundle {
  path: string;
  reader: BundleReader;
  bundle: LoadedBundle;
  verification: BundleVerification;
  signature: BundleSignature;
  subject: CheckSubject;
  /** Image configs by image component name (their Env carries CUDA_VERSION). */
  imageConfigs: ReadonlyMap<string, unknown>;
  close(): Promise<void>;
}

export interface PrepareOptions extends RunOptions {
  /** Require the signature to verify with this key on the operator's side too (`verify --key`). */
  publicKeyPath?: string | undefined;
  /** The progress step verification reports under. */
  step?: string;
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
      close: () => reader.close(),
    };
  } catch (error) {
    await reader.close();
    throw error;
  }
}
