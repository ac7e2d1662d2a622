import { ApertusError } from '../errors.js';
import { shellQuote } from '../host/shell-quote.js';
import type { Transport } from '../host/transport.js';
import type { HostLayout } from './layout.js';

/**
 * One install at a time per host root: mkdir is atomic on every POSIX filesystem, so the
 * lock needs no tool beyond sh. It records who holds it, for the operator who finds it.
 */
export async function lockHost(
  transport: Transport,
  layout: HostLayout,
  holder: string,
): Promise<() => Promise<void>> {
  const q = (value: string) => shellQuote([value]);
  const result = await transport.exec(
    `mkdir -p ${q(layout.root)} && mkdir ${q(layout.lock)} 2>/dev/null && printf '%s\\n' ${q(holder)} > ${q(`${layout.lock}/holder`)}`,
    { reject: false },
  );
  if (result.exitCode !== 0) {
    const held = await transport.exec(`cat ${q(`${layout.lock}/holder`)} 2>/dev/null`, { reject: false });
    throw new ApertusError(
      'host-busy',
      `Another install holds ${layout.lock} on ${transport.description} (${held.stdout.trim() || 'holder unknown'}).`,
      {
        kind: 'operation',
        hint: `Wait for it to finish. If no install is running (it was killed), remove the directory: rm -r ${layout.lock}`,
      },
    );
  }
  return async () => {
    await transport.exec(shellQuote(['rm', '-rf', layout.lock]), { reject: false });
  };
}
