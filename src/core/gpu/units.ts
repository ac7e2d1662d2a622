/** nvidia-smi reports memory in MiB (runtime-facts 4.3); everything else here counts bytes. */
export const MIB = 1024 * 1024;
export const GIB = 1024 * MIB;

const DECIMAL_UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];

/** Decimal units, as model cards and disk vendors count ("16.1 GB of weights", "141 GB"). */
export function formatGB(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1000 && unit < DECIMAL_UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  if (unit === 0) return `${bytes} B`;
  return `${Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(1)} ${DECIMAL_UNITS[unit]}`;
}

/** Binary units for KV-cache sizes, which are powers of two ("128 KiB per token"). */
export function formatBinary(bytes: number): string {
  const shown = (value: number) => (Number.isInteger(value) ? String(value) : value.toFixed(1));
  if (bytes >= GIB) return `${shown(bytes / GIB)} GiB`;
  if (bytes >= MIB) return `${shown(bytes / MIB)} MiB`;
  if (bytes >= 1024) return `${shown(bytes / 1024)} KiB`;
  return `${bytes} B`;
}
