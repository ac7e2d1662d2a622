/**
 * Wheel file names (PEP 427, with the escaping rules of the binary distribution format
 * spec): `{distribution}-{version}(-{build tag})?-{python tag}-{abi tag}-{platform tag}.whl`,
 * where each tag may be a compressed set joined by '.' ('py2.py3').
 */

export interface WheelFileName {
  fileName: string;
  /** As written in the file name: '-' escaped to '_' ('apertus_hello'). */
  distribution: string;
  version: string;
  build: string | null;
  pythonTags: string[];
  abiTags: string[];
  platformTags: string[];
}

const PART = /^[^-\s/\\]+$/;

/** The parsed name, or undefined when `fileName` is not a wheel file name. */
export function parseWheelFileName(fileName: string): WheelFileName | undefined {
  if (!fileName.endsWith('.whl')) return undefined;
  const parts = fileName.slice(0, -'.whl'.length).split('-');
  if (parts.length !== 5 && parts.length !== 6) return undefined;
  if (!parts.every((part) => PART.test(part))) return undefined;
  const [distribution, version, ...rest] = parts as [string, string, ...string[]];
  const build = rest.length === 4 ? (rest.shift() as string) : null;
  if (build !== null && !/^[0-9]/.test(build)) return undefined;
  const [python, abi, platform] = rest as [string, string, string];
  return {
    fileName,
    distribution,
    version,
    build,
    pythonTags: python.split('.'),
    abiTags: abi.split('.'),
    platformTags: platform.split('.'),
  };
}

/** PEP 503 normalised project name: what pip compares ('Apertus_Hello' -> 'apertus-hello'). */
export function normaliseProjectName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}
