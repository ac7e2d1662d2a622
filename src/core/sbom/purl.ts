/**
 * Package URLs (github.com/package-url/purl-spec) for the kinds of things a bundle holds,
 * built the way each type's entry in PURL-TYPES.rst writes them.
 */

/** Percent-encodes a purl segment; the spec leaves letters, digits and `.-_~` as they are. */
function segment(value: string): string {
  return encodeURIComponent(value);
}

/** Qualifier values keep ':' and '/' readable (`repository_url=127.0.0.1:5000/apertus/hello`). */
function qualifierValue(value: string): string {
  return encodeURIComponent(value).replace(/%3A/gi, ':').replace(/%2F/gi, '/');
}

function qualifiers(values: Record<string, string | undefined>): string {
  const pairs = Object.entries(values)
    .filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== '')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${key}=${qualifierValue(value)}`);
  return pairs.length === 0 ? '' : `?${pairs.join('&')}`;
}

/** `pkg:npm/%40scope/name@1.0.0`: the scope is the namespace, with its '@' encoded. */
export function npmPurl(name: string, version: string): string {
  const slash = name.startsWith('@') ? name.indexOf('/') : -1;
  const path =
    slash > 0 ? `${segment(name.slice(0, slash))}/${segment(name.slice(slash + 1))}` : segment(name);
  return `pkg:npm/${path}@${segment(version)}`;
}

/** PEP 503 normalised name: lowercase, runs of '-', '_' and '.' as one '-'. */
export function normalisePythonName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

export function pypiPurl(name: string, version: string): string {
  return `pkg:pypi/${segment(normalisePythonName(name))}@${segment(version)}`;
}

/**
 * `pkg:oci/hello@sha256%3A<hex>?arch=amd64&repository_url=127.0.0.1:5000/apertus/hello&tag=1`:
 * the name is the last path component of the repository, the version the manifest digest.
 */
export function ociPurl(image: {
  registry: string;
  repository: string;
  digest: string;
  tag?: string | undefined;
  /** 'os/architecture[/variant]'. */
  platform?: string | undefined;
}): string {
  const name = image.repository.split('/').at(-1) ?? image.repository;
  const arch = image.platform?.split('/').slice(1).join('/') || undefined;
  return `pkg:oci/${segment(name.toLowerCase())}@${segment(image.digest)}${qualifiers({
    arch,
    repository_url: `${image.registry}/${image.repository}`,
    tag: image.tag,
  })}`;
}

export const HUGGING_FACE_HUB = 'https://huggingface.co';

/** `pkg:huggingface/ORG/NAME@<commit>`, with `repository_url` for a Hub other than huggingface.co. */
export function huggingFacePurl(repo: string, revision: string, endpoint?: string): string {
  const path = repo.split('/').map(segment).join('/');
  const hub = endpoint?.replace(/\/+$/, '');
  return `pkg:huggingface/${path}@${segment(revision.toLowerCase())}${qualifiers({
    repository_url: hub === undefined || hub === HUGGING_FACE_HUB ? undefined : hub,
  })}`;
}
