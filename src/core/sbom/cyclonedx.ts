/**
 * The CycloneDX 1.6 JSON document apertus writes, as plain data, and its serial number.
 * Only the fields apertus fills are typed; the test suite validates the result against
 * the CycloneDX 1.6 strict JSON schema (@cyclonedx/cyclonedx-library).
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from '../layout/canonical-json.js';
import type { CycloneDxLicense } from './spdx-license.js';

export const CYCLONEDX_SPEC_VERSION = '1.6';

export type CycloneDxComponentType =
  | 'application'
  | 'container'
  | 'data'
  | 'file'
  | 'library'
  | 'machine-learning-model';

export interface CycloneDxHash {
  alg: 'SHA-256' | 'SHA-1';
  content: string;
}

export interface CycloneDxProperty {
  name: string;
  value: string;
}

export interface CycloneDxComponent {
  type: CycloneDxComponentType;
  'bom-ref': string;
  group?: string;
  name: string;
  version?: string;
  description?: string;
  hashes?: CycloneDxHash[];
  licenses?: CycloneDxLicense[];
  purl?: string;
  externalReferences?: Array<{ type: 'distribution' | 'vcs' | 'website'; url: string }>;
  components?: CycloneDxComponent[];
  modelCard?: {
    modelParameters?: { architectureFamily?: string; modelArchitecture?: string };
    properties?: CycloneDxProperty[];
  };
  properties?: CycloneDxProperty[];
}

export interface CycloneDxBom {
  bomFormat: 'CycloneDX';
  specVersion: typeof CYCLONEDX_SPEC_VERSION;
  serialNumber: string;
  version: 1;
  metadata: {
    tools: { components: CycloneDxComponent[] };
    component: CycloneDxComponent;
    properties?: CycloneDxProperty[];
  };
  components: CycloneDxComponent[];
  dependencies: Array<{ ref: string; dependsOn: string[] }>;
}

/** Namespace for apertus's name-based UUIDs (itself a version 5 UUID of 'apertus.dev' in the URL namespace). */
const URL_NAMESPACE = '6ba7b811-9dad-11d1-80b4-00c04fd430c8';

/** RFC 9562 version 5 (SHA-1, name-based) UUID of `name` in `namespace`. */
export function uuidV5(name: string, namespace: string): string {
  const hash = createHash('sha1')
    .update(Buffer.from(namespace.replace(/-/g, ''), 'hex'))
    .update(name, 'utf8')
    .digest();
  const bytes = hash.subarray(0, 16);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x50;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const APERTUS_NAMESPACE = uuidV5('https://apertus.dev/sbom', URL_NAMESPACE);

/**
 * The finished document: its serial number is derived from everything else in it, so
 * the same bundle content gives the same SBOM, byte for byte, and different content a
 * different serial. No timestamp, for the same reason (the bundle tar has none either).
 */
export function finishBom(bom: Omit<CycloneDxBom, 'serialNumber'>): CycloneDxBom {
  const serialNumber = `urn:uuid:${uuidV5(canonicalJson(bom), APERTUS_NAMESPACE)}`;
  const { bomFormat, specVersion, ...rest } = bom;
  return { bomFormat, specVersion, serialNumber, ...rest };
}

/** `sha256:<hex>` as a CycloneDX hash. */
export function sha256Hash(digest: string): CycloneDxHash {
  return { alg: 'SHA-256', content: digest.replace(/^sha256:/, '') };
}
