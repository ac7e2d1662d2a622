import type { CliIO } from '../io.js';

/** With --json, stdout holds exactly one JSON document: the result, or the error. */
export function writeJson(io: CliIO, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
