/**
 * The rules for every value of a recipe or a bundle that later becomes a path, a unit
 * name, a command argument, a port or a URL on a host (STYLE.md 18). The recipe schema and
 * the bundle schema both build on these, so a bundle is held to exactly the rules its
 * recipe was: a bundle forged by hand (re-hashed, re-signed) is refused at load, before
 * anything on a host changes, naming the field.
 *
 * Patterns are plain ECMAScript without the `u` flag where they can be, so the JSON Schema
 * generated from the recipe schema gives editors the same rule.
 */
import { z } from 'zod';
import { confinedRelativePath } from '../layout/names.js';
import { imageName, parseOciReference } from '../sources/oci/parse-oci-reference.js';

/** C0 and C1 control characters and DEL: a newline in an argument starts a new unit line or shell command. */
const CONTROL = '\\u0000-\\u001f\\u007f-\\u009f';
/** Bidirectional marks, embeddings, overrides and isolates: text that reads otherwise than it runs (CVE-2021-42574). */
const BIDI = '\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069';
/** Unicode line and paragraph separators: newlines to some readers. */
const LINE_BREAKS = '\\u2028\\u2029';
/** Characters that show as nothing: two ids that look the same must not be two ids. */
const INVISIBLE = '\\u00ad\\u200b-\\u200d\\u2060-\\u2064\\ufeff';

const NOT_SHOWN = 'has a control, bidirectional or line-separator character';

function characters(allowed: string): RegExp {
  return new RegExp(`^[^${allowed}]*$`);
}

/** One line of text: no control, bidi or line-separator characters. */
const ONE_LINE = characters(`${CONTROL}${BIDI}${LINE_BREAKS}`);
/** Text over several lines: tabs and newlines are allowed, nothing else unseen. */
const MULTI_LINE = characters(`\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f${BIDI}`);

/** Lowercase names: bundles, components, services, golden prompts. A single path segment and a unit name. */
export const RESOURCE_NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export const resourceName = z
  .string()
  .regex(RESOURCE_NAME_PATTERN, 'use lowercase letters, digits and dashes (max 63)');

/** A release version: one path segment on the host (releases/<name>/<version>), never "." or "..". */
export const versionString = z
  .string()
  .regex(/^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$/, 'use a version such as 0.1.0');

/** Free text on one line: descriptions, provenance, details. */
export function oneLineText(max = 4096) {
  return z.string().max(max).regex(ONE_LINE, `${NOT_SHOWN}, or a newline`);
}

/** Text that may span lines (prompts): no control characters but tab and newline, no bidi. */
export function multiLineText(max = 65_536) {
  return z.string().max(max).regex(MULTI_LINE, NOT_SHOWN);
}

/** A prompt: not empty, may span lines. */
export const promptText = multiLineText().min(1);

/** One command argument or environment value: any text on one line. */
export const argument = oneLineText(4096);

/**
 * The id a model is served under (`--model-id`, `--served-model-name`, /v1/models): an
 * argument, so never starting with '-', and an identifier, so nothing invisible.
 */
export const modelId = z
  .string()
  .min(1)
  .max(256)
  .regex(
    new RegExp(
      `^[^-\\s${CONTROL}${BIDI}${LINE_BREAKS}${INVISIBLE}][^\\s${CONTROL}${BIDI}${LINE_BREAKS}${INVISIBLE}]*$`,
    ),
    'a model id is printable, has no spaces and does not start with "-"',
  );

/** A path inside a component, as its layer titles hold it: relative, normalised, never leaving the component. */
export const componentPath = oneLineText(1024)
  .min(1)
  .refine((path) => confinedRelativePath(path) === path, {
    message: 'a relative path inside the component: no leading "/", no "." or ".." parts, no empty parts',
  });

/** True when `path` is a plain relative path inside a directory. */
export function isComponentPath(path: string): boolean {
  return componentPath.safeParse(path).success;
}

/** A port services listen on on the host: unprivileged. */
export const hostPort = z.number().int().min(1024).max(65535);

/** A port inside a container: any. */
export const anyPort = z.number().int().min(1).max(65535);

/** A whole number in [min, max]. */
export function count(min: number, max: number) {
  return z.number().int().min(min).max(max);
}

export const bind = z.enum(['127.0.0.1', '0.0.0.0']);
export const dtype = z.enum(['auto', 'half', 'bfloat16', 'float16']);

/** The bounds of each number a service is started with. */
export const LIMITS = {
  threads: count(1, 256),
  contextSize: count(64, 16 * 1024 * 1024),
  maxModelLen: count(64, 16 * 1024 * 1024),
  tensorParallelSize: count(1, 64),
  gpuMemoryUtilization: z.number().min(0.05).max(1),
  dimension: count(1, 65_536),
  chunkSize: count(50, 1_000_000),
  chunkOverlap: count(0, 1_000_000),
  topK: count(1, 100),
  maxContextChars: count(100, 10_000_000),
  maxTokens: count(1, 4096),
  temperature: z.number().min(0).max(2),
  /** A LoRA adapter's rank: vLLM serves up to 512 (vllm/vllm.ts VLLM_LORA_RANKS). */
  loraRank: count(1, 512),
} as const;

const LOOPBACK_URL = /^http:\/\/(127\.0\.0\.1|localhost|\[::1\]):([0-9]{1,5})$/;

/** A service the RAG service calls: plain HTTP on the host's loopback, a port and nothing else. */
export const loopbackUrl = z
  .string()
  .regex(LOOPBACK_URL, 'write http://127.0.0.1:PORT: services call each other on loopback')
  .refine((url) => anyPort.safeParse(portOfLoopbackUrl(url)).success, { message: 'the port is not 1-65535' });

/** The port of a loopback URL that passed `loopbackUrl`. */
export function portOfLoopbackUrl(url: string): number {
  return Number(LOOPBACK_URL.exec(url)?.[2]);
}

/** An image as the host's engine names it after loading: REGISTRY/NAME:TAG (parse-oci-reference repoTag). */
export const imageReference = z
  .string()
  .max(512)
  .refine(
    (value) => {
      try {
        const reference = parseOciReference(value);
        return reference.digest === undefined && `${imageName(reference)}:${reference.tag}` === value;
      } catch {
        return false;
      }
    },
    { message: 'an image reference as loaded: REGISTRY/NAME:TAG' },
  );

/** An absolute directory inside a container, no "..", nothing the engine's volume syntax splits on. */
export const containerPath = oneLineText(1024)
  .regex(/^\/[^,:]+$/, 'an absolute path inside the container, without "," or ":"')
  .refine((path) => confinedRelativePath(path.slice(1)) === path.slice(1), {
    message: 'a normalised absolute path: no "." or ".." parts, no empty parts',
  });

/** An HTTP path on the service, e.g. /healthz. */
export const httpPath = z
  .string()
  .regex(/^\/[\x21-\x7e]{0,255}$/, 'an HTTP path starting with "/", printable ASCII, no spaces');

export const envName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,255}$/, 'an environment variable name: letters, digits and _');

/** A Qdrant collection name. */
export const collectionName = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'letters, digits, _ and -');

/** A JavaScript regular expression (unicode) an answer must match. */
export const answerPattern = oneLineText(4096)
  .min(1)
  .refine((pattern) => {
    try {
      new RegExp(pattern, 'u');
      return true;
    } catch {
      return false;
    }
  }, 'not a valid regular expression');

/** Each entry whose key an earlier entry has, with that earlier entry: names and ports must be unique. */
export function repeatedKeys<T, K>(
  entries: readonly T[],
  key: (entry: T) => K,
): Array<{ index: number; key: K; first: T }> {
  const seen = new Map<K, T>();
  const repeats: Array<{ index: number; key: K; first: T }> = [];
  entries.forEach((entry, index) => {
    const k = key(entry);
    const first = seen.get(k);
    if (first === undefined) seen.set(k, entry);
    else repeats.push({ index, key: k, first });
  });
  return repeats;
}

/** The issues of names and ports used twice among a document's components and services. */
export function uniquenessIssues(
  components: ReadonlyArray<{ name: string }>,
  services: ReadonlyArray<{ name: string; port: number }>,
): Array<{ path: Array<string | number>; message: string }> {
  return [
    ...repeatedKeys(components, (c) => c.name).map((r) => ({
      path: ['components', r.index, 'name'],
      message: `duplicate component "${r.key}"`,
    })),
    ...repeatedKeys(services, (s) => s.name).map((r) => ({
      path: ['services', r.index, 'name'],
      message: `duplicate service "${r.key}"`,
    })),
    ...repeatedKeys(services, (s) => s.port).map((r) => ({
      path: ['services', r.index, 'port'],
      message: `port ${r.key} is already used by service "${r.first.name}"`,
    })),
  ];
}
