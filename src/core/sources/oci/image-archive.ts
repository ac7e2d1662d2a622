/**
 * The image as the target host loads it, built ON THE HOST from its blob store (DESIGN.md
 * section 3) with hard links, so no byte of the image is copied:
 *
 *   <archiveDir>/oci-layout       {"imageLayoutVersion":"1.0.0"}
 *   <archiveDir>/index.json       one descriptor: the image manifest, named REGISTRY/NAME:TAG
 *   <archiveDir>/manifest.json    docker's: Config and Layers point at blobs/sha256/<hex>, RepoTags
 *   <archiveDir>/blobs/sha256/*   links to the manifest, config and layers in the blob store
 *
 * That is what `docker save` >= v25 writes (runtime-facts §5.3): an OCI layout (image-spec
 * image-layout.md, §5.2) that also carries docker's `manifest.json`, which the classic
 * `docker load` reads (gzip layers included: it decompresses each layer stream), while
 * podman and skopeo read the layout (`skopeo inspect oci:<dir>`). Loading:
 *
 * - podman: `podman load -i <dir>` reads the layout in place (an archive or stdin would be
 *   copied to a temporary file and unpacked first). Podman <= 4.3 names an image loaded from
 *   a directory after the path it was given (newer ones may leave it unnamed), so the script
 *   loads from the parent directory by base name, tags the image by its ID (the config
 *   digest) with each RepoTag, and removes the path-derived name.
 * - docker: `docker load` reads a tar stream: `tar -ch` of the directory is piped into it
 *   (`-h`: blobs may be symbolic links when the store is on another filesystem).
 */
import { ApertusError } from '../../errors.js';
import { quoteArg } from '../../host/shell-quote.js';
import { IMAGE_MEDIA_TYPE } from './image-media-types.js';

export interface ImageArchiveSpec {
  /** The image manifest as stored in the blob store (and as the registry served it). */
  manifest: { mediaType: string; digest: string; size: number };
  config: { digest: string };
  /** In manifest order. */
  layers: ReadonlyArray<{ digest: string }>;
  /** Names the image gets, REGISTRY/NAME:TAG; the first one also names it in index.json. */
  repoTags: readonly string[];
}

export type ImageLoader = 'podman' | 'docker' | 'auto' | 'none';

export interface ImageArchiveScriptOptions {
  /** The host's blob store directory holding `<hex>` files, e.g. /var/lib/apertus/blobs/sha256. */
  blobDir: string;
  /**
   * Where the archive directory is made (replaced if it exists), absolute; its base name must
   * be a valid lowercase image name component, e.g. /var/lib/apertus/images/sha256-<hex>.
   */
  archiveDir: string;
  /** Which engine loads it: 'auto' picks podman, else docker; 'none' only builds the directory. */
  load: ImageLoader;
}

export interface ImageArchiveFiles {
  'oci-layout': string;
  'index.json': string;
  'manifest.json': string;
}

const DIGEST = /^sha256:([0-9a-f]{64})$/;
/** A path component podman accepts in `localhost/<name>` (distribution reference grammar). */
const ARCHIVE_BASENAME = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
/** REGISTRY/NAME:TAG, conservatively: no spaces or quotes, a tag after the last '/'. */
const REPO_TAG = /^[a-z0-9.:[\]-]+(?:\/[a-z0-9._-]+)+:[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

/** `io.containerd.image.name`: docker's containerd image store names an imported image by it. */
const CONTAINERD_NAME_ANNOTATION = 'io.containerd.image.name';
const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

function hexOf(digest: string, what: string): string {
  const hex = DIGEST.exec(digest)?.[1];
  if (hex === undefined) {
    throw new ApertusError(
      'image-archive-invalid',
      `The ${what} digest "${digest}" is not a sha256 digest.`,
      {
        hint: 'Image components hold sha256-addressed blobs only; bundle the image again.',
      },
    );
  }
  return hex;
}

/** The three small documents of the archive, exactly as written on the host. */
export function imageArchiveFiles(spec: ImageArchiveSpec): ImageArchiveFiles {
  const configHex = hexOf(spec.config.digest, 'config');
  const layerPaths = spec.layers.map((layer) => `blobs/sha256/${hexOf(layer.digest, 'layer')}`);
  hexOf(spec.manifest.digest, 'manifest');
  const first = spec.repoTags[0];
  if (first === undefined) {
    throw new ApertusError('image-archive-invalid', 'The image has no name to load it as.', {
      hint: 'Pass at least one REGISTRY/NAME:TAG.',
    });
  }
  for (const tag of spec.repoTags) {
    if (!REPO_TAG.test(tag)) {
      throw new ApertusError('image-archive-invalid', `"${tag}" is not a REGISTRY/NAME:TAG image name.`, {
        hint: 'Name images as REGISTRY/NAME:TAG, e.g. docker.io/vllm/vllm-openai:v0.11.0.',
      });
    }
  }
  const index = {
    schemaVersion: 2,
    mediaType: IMAGE_MEDIA_TYPE.ociIndex,
    manifests: [
      {
        mediaType: spec.manifest.mediaType,
        digest: spec.manifest.digest,
        size: spec.manifest.size,
        annotations: { [CONTAINERD_NAME_ANNOTATION]: first, [REF_NAME_ANNOTATION]: first },
      },
    ],
  };
  const dockerManifest = [
    { Config: `blobs/sha256/${configHex}`, RepoTags: [...spec.repoTags], Layers: layerPaths },
  ];
  return {
    'oci-layout': '{"imageLayoutVersion":"1.0.0"}',
    'index.json': JSON.stringify(index),
    'manifest.json': JSON.stringify(dockerManifest),
  };
}

/**
 * The sh script that builds the archive directory from the host's blob store and loads it.
 * Every value in it is quoted; it needs sh, mkdir, ln, rm, mv, printf (and tar for docker).
 * Exit status 3: a blob is missing from the store; 127: no container engine.
 */
export function imageArchiveScript(spec: ImageArchiveSpec, options: ImageArchiveScriptOptions): string {
  const files = imageArchiveFiles(spec);
  const { archiveDir, blobDir } = options;
  if (!archiveDir.startsWith('/') || !blobDir.startsWith('/')) {
    throw new ApertusError(
      'image-archive-invalid',
      'The archive and blob directories must be absolute paths.',
      {
        hint: 'Pass absolute host paths.',
      },
    );
  }
  const parent = archiveDir.replace(/\/+[^/]*\/*$/, '') || '/';
  const base = archiveDir.replace(/\/+$/, '').split('/').pop() ?? '';
  if (!ARCHIVE_BASENAME.test(base)) {
    throw new ApertusError(
      'image-archive-invalid',
      `The archive directory name "${base}" is not a lowercase image name component.`,
      { hint: 'Name it like sha256-<hex>: podman names an image loaded from a directory after it.' },
    );
  }
  const hexes = [
    ...new Set([spec.manifest.digest, spec.config.digest, ...spec.layers.map((l) => l.digest)]),
  ].map((digest) => hexOf(digest, 'blob'));
  const configHex = hexOf(spec.config.digest, 'config');
  const q = quoteArg;
  const lines = [
    'set -eu',
    `blobs=${q(blobDir)}`,
    `parent=${q(parent)}`,
    `name=${q(base)}`,
    'dir="$parent/$name"',
    'tmp="$parent/.$name.tmp.$$"',
    'rm -rf "$tmp"',
    'mkdir -p "$tmp/blobs/sha256"',
    `for hex in ${hexes.join(' ')}; do`,
    '  if [ ! -f "$blobs/$hex" ]; then echo "blob sha256:$hex is not in $blobs" >&2; rm -rf "$tmp"; exit 3; fi',
    // A hard link costs no space; a store on another filesystem gets a symbolic link instead.
    '  ln "$blobs/$hex" "$tmp/blobs/sha256/$hex" 2>/dev/null || ln -s "$blobs/$hex" "$tmp/blobs/sha256/$hex"',
    'done',
    `printf '%s' ${q(files['oci-layout'])} > "$tmp/oci-layout"`,
    `printf '%s' ${q(files['index.json'])} > "$tmp/index.json"`,
    `printf '%s' ${q(files['manifest.json'])} > "$tmp/manifest.json"`,
    'rm -rf "$dir"',
    'mv "$tmp" "$dir"',
  ];

  const podman = [
    // From the parent by base name: podman <= 4.3 names the image localhost/<name>:latest.
    '(cd "$parent" && podman load -i "$name")',
    ...spec.repoTags.map((tag) => `podman tag ${configHex} ${q(tag)}`),
    `podman untag ${configHex} "localhost/$name:latest" >/dev/null 2>&1 || true`,
  ];
  const docker = ['tar -chf - -C "$dir" oci-layout index.json manifest.json blobs | docker load'];
  if (options.load === 'podman') lines.push(...podman);
  else if (options.load === 'docker') lines.push(...docker);
  else if (options.load === 'auto') {
    lines.push(
      'if command -v podman >/dev/null 2>&1; then',
      ...podman.map((line) => `  ${line}`),
      'elif command -v docker >/dev/null 2>&1; then',
      ...docker.map((line) => `  ${line}`),
      'else',
      '  echo "neither podman nor docker is installed" >&2',
      '  exit 127',
      'fi',
    );
  }
  return `${lines.join('\n')}\n`;
}
