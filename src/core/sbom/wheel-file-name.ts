/**
 * Name and version of a Python wheel from its file name (PEP 427, as amended by the
 * binary distribution format spec): `{distribution}-{version}(-{build})?-{python}-{abi}-{platform}.whl`,
 * where the distribution and version have their '-' escaped as '_'.
 */
export interface WheelFileName {
  name: string;
  version: string;
  build?: string;
  tags: { python: string; abi: string; platform: string };
}

/** The parsed file name, or undefined when it is not a wheel's. */
export function parseWheelFileName(fileName: string): WheelFileName | undefined {
  const base = fileName.split('/').at(-1) ?? fileName;
  if (!base.endsWith('.whl')) return undefined;
  const parts = base.slice(0, -'.whl'.length).split('-');
  if (parts.length !== 5 && parts.length !== 6) return undefined;
  const [name, version] = parts;
  const [python, abi, platform] = parts.slice(-3);
  if (!name || !version || !python || !abi || !platform) return undefined;
  // A build tag starts with a digit (PEP 427).
  const build = parts.length === 6 ? parts[2] : undefined;
  if (build !== undefined && !/^[0-9]/.test(build)) return undefined;
  return { name, version, ...(build === undefined ? {} : { build }), tags: { python, abi, platform } };
}
