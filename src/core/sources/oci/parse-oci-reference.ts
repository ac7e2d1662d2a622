/**
 * The `oci:` source as written in a recipe: `oci:[REGISTRY/]NAME[:TAG][@sha256:<hex>]`,
 * normalised the way docker and podman do it (containers-transports(5), runtime-facts §5.1):
 * no registry means docker.io, a single-component name on docker.io gets `library/`, and
 * docker.io's API lives at registry-1.docker.io. No tag and no digest means `latest`.
 * The pinned form that resolution produces (`oci:REGISTRY/NAME@sha256:<hex>`, also without
 * the `oci:` prefix) parses too, so a resolved source can be fetched again.
 */
import { ApertusError } from '../../errors.js';

export interface OciReference {
  /** The registry as people write it: 'docker.io', 'ghcr.io', '127.0.0.1:5000'. */
  registry: string;
  /** Host (and port) the distribution API is served from: 'registry-1.docker.io' for docker.io. */
  host: string;
  /** 'https', or 'http' for a registry marked insecure (plain HTTP, e.g. a test registry). */
  scheme: 'https' | 'http';
  /** Repository name inside the registry: 'library/ubuntu', 'vllm/vllm-openai'. */
  repository: string;
  tag?: string;
  /** 'sha256:<hex>' when the source names a digest; it wins over the tag. */
  digest?: string;
}

export interface ParseOciReferenceOptions {
  /**
   * Talk plain HTTP to the registry (`--tls-verify=false` in skopeo terms). For local test
   * registries and labs only: nothing is authenticated or encrypted.
   */
  insecure?: boolean;
}

export const DOCKER_HUB = 'docker.io';
/** Where docker.io's distribution API answers (runtime-facts §5.1 step 3). */
export const DOCKER_HUB_API_HOST = 'registry-1.docker.io';
export const DEFAULT_TAG = 'latest';

const EXAMPLE = 'oci:docker.io/vllm/vllm-openai:v0.11.0';

/** runtime-facts §5.1 step 4. */
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
/** Path components as the distribution spec allows them: lowercase, separators between. */
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const PORT = /^[0-9]{1,5}$/;
/** distribution/reference: a name is at most 255 characters, registry included. */
const MAX_NAME_LENGTH = 255;

export function parseOciReference(source: string, options: ParseOciReferenceOptions = {}): OciReference {
  // `user:password@host/…` is no reference syntax, but people try it: never echo the password.
  const shown = source.replace(/^((?:oci:(?:\/\/)?)?)[^/@]*:[^/@]*@/, '$1***@');
  const invalid = (why: string, hint?: string): never => {
    throw new ApertusError(
      'oci-reference-invalid',
      `The source ${JSON.stringify(shown)} is not valid: ${why}.`,
      {
        hint:
          hint ?? `Write it as oci:REGISTRY/NAME:TAG or oci:REGISTRY/NAME@sha256:<64 hex>, e.g. ${EXAMPLE}.`,
      },
    );
  };
  let body = source.trim();
  if (body.startsWith('oci://')) body = body.slice('oci://'.length);
  else if (body.startsWith('oci:')) body = body.slice('oci:'.length);
  // Another scheme (hf:, docker://); `host:5000/…` is a registry with a port, not a scheme.
  else if (/^[a-z][a-z0-9+-]*:(?![0-9])/.test(body)) return invalid("it does not start with 'oci:'");
  if (body === '') return invalid('the image name is missing');

  let digest: string | undefined;
  const at = body.indexOf('@');
  if (at !== -1) {
    digest = body.slice(at + 1);
    body = body.slice(0, at);
    if (!DIGEST.test(digest)) {
      return invalid(
        `${JSON.stringify(digest)} is not a sha256 digest`,
        'A digest is written @sha256: followed by 64 lowercase hex digits (other algorithms are not supported).',
      );
    }
  }

  // The tag is after the last ':' that comes after the last '/', so a registry port is not a tag.
  let tag: string | undefined;
  const lastSlash = body.lastIndexOf('/');
  const colon = body.indexOf(':', lastSlash + 1);
  if (colon !== -1) {
    tag = body.slice(colon + 1);
    body = body.slice(0, colon);
    if (!TAG.test(tag)) {
      return invalid(
        `${JSON.stringify(tag)} is not a valid tag`,
        'A tag is 1 to 128 characters of letters, digits, "_", "." and "-", not starting with "." or "-".',
      );
    }
  }

  const parts = body.split('/');
  let registry = DOCKER_HUB;
  const first = parts[0] ?? '';
  // distribution/reference: the first component is a registry when it looks like a host.
  if (
    parts.length > 1 &&
    (first.includes('.') || first.includes(':') || first === 'localhost' || /[A-Z]/.test(first))
  ) {
    registry = parseRegistry(first, invalid);
    parts.shift();
  }
  if (registry === 'index.docker.io' || registry === DOCKER_HUB_API_HOST) registry = DOCKER_HUB;
  if (parts.length === 0 || parts.some((part) => part === ''))
    return invalid('the image name is missing or has an empty component');
  for (const part of parts) {
    if (!PATH_COMPONENT.test(part)) {
      invalid(
        `${JSON.stringify(part)} is not a valid name component`,
        'Image names are lowercase letters and digits, with ".", "_", "__" or "-" between them, e.g. vllm/vllm-openai.',
      );
    }
  }
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift('library');
  const repository = parts.join('/');
  if (registry.length + 1 + repository.length > MAX_NAME_LENGTH) {
    return invalid(`the name is longer than ${MAX_NAME_LENGTH} characters`);
  }

  const reference: OciReference = {
    registry,
    host: registry === DOCKER_HUB ? DOCKER_HUB_API_HOST : registry,
    scheme: options.insecure ? 'http' : 'https',
    repository,
  };
  if (digest !== undefined) reference.digest = digest;
  if (tag !== undefined) reference.tag = tag;
  if (digest === undefined && tag === undefined) reference.tag = DEFAULT_TAG;
  return reference;
}

function parseRegistry(raw: string, invalid: (why: string, hint?: string) => never): string {
  const hint =
    'A registry is a host name or IP address with an optional port, e.g. ghcr.io or 127.0.0.1:5000.';
  let host = raw;
  let port: string | undefined;
  if (raw.startsWith('[')) {
    const end = raw.indexOf(']');
    if (end === -1) return invalid(`${JSON.stringify(raw)} is not a valid registry`, hint);
    const rest = raw.slice(end + 1);
    if (rest !== '' && !(rest.startsWith(':') && PORT.test(rest.slice(1)))) {
      return invalid(`${JSON.stringify(raw)} is not a valid registry`, hint);
    }
    if (!/^\[[0-9a-fA-F:.]+\]$/.test(raw.slice(0, end + 1))) {
      return invalid(`${JSON.stringify(raw)} is not a valid registry`, hint);
    }
    return raw.toLowerCase();
  }
  const colon = raw.lastIndexOf(':');
  if (colon !== -1) {
    host = raw.slice(0, colon);
    port = raw.slice(colon + 1);
    if (!PORT.test(port) || Number(port) > 65535)
      return invalid(`${JSON.stringify(raw)} has an invalid port`, hint);
  }
  if (!host.split('.').every((component) => DOMAIN_COMPONENT.test(component))) {
    return invalid(`${JSON.stringify(raw)} is not a valid registry`, hint);
  }
  // Host names are case-insensitive; the name part of a reference is not.
  return port === undefined ? host.toLowerCase() : `${host.toLowerCase()}:${port}`;
}

/** `REGISTRY/NAME`, the image's full name (no tag, no digest). */
export function imageName(reference: Pick<OciReference, 'registry' | 'repository'>): string {
  return `${reference.registry}/${reference.repository}`;
}

/** `REGISTRY/NAME@sha256:<hex>`: the exact image, for provenance and for fetching again. */
export function pinnedReference(
  reference: Pick<OciReference, 'registry' | 'repository'>,
  digest: string,
): string {
  return `${imageName(reference)}@${digest}`;
}

/**
 * The name:tag an image gets when it is loaded on a host (docker manifest.json RepoTags).
 * A source pinned by digest alone has no tag; it is named `sha256-<hex>` then, in the
 * style cosign uses for digest-named tags (a valid tag: 71 characters).
 */
export function repoTag(
  reference: Pick<OciReference, 'registry' | 'repository' | 'tag'>,
  digest: string,
): string {
  const tag = reference.tag ?? digest.replace(':', '-');
  return `${imageName(reference)}:${tag}`;
}

/** Base URL of the registry's distribution API, without a trailing slash. */
export function registryBaseUrl(reference: Pick<OciReference, 'host' | 'scheme'>): string {
  return `${reference.scheme}://${reference.host}`;
}
