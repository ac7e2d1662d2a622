import type { CliIO } from '../io.js';

/**
 * 'live': listr2's redrawing renderer, only on a TTY outside CI.
 * 'plain': one line per step, for CI logs and pipes.
 * 'silent': nothing but the result (--json).
 */
export type RendererMode = 'live' | 'plain' | 'silent';

export function chooseRendererMode(io: CliIO, options: { json?: boolean | undefined }): RendererMode {
  if (options.json) return 'silent';
  const ci = io.env.CI !== undefined && io.env.CI !== '' && io.env.CI !== 'false';
  if (io.isTTY && !ci && io.env.TERM !== 'dumb') return 'live';
  return 'plain';
}
