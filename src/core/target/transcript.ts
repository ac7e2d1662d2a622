/**
 * The probe's output format, which is also the format of the real GPU host capture in
 * shared/fixtures/gpu: a section per command, `=== $ command`, its output (stdout and
 * stderr together), and a last line `# exit N`. One format means fixtures and live hosts
 * go through the same parser.
 */
import type { CommandOutput, CommandOutputs } from '../gpu/gpu-inventory.js';

export interface TranscriptSection extends CommandOutput {
  command: string;
}

const HEADER = /^=== (?:\$ )?(.*)$/;
/** The exit marker ends the section; a truncated last line (exit 141 on SIGPIPE) carries it at its end. */
const EXIT = /# exit (\d+)\s*$/;

export function parseTranscript(text: string): TranscriptSection[] {
  const sections: TranscriptSection[] = [];
  let current: { command: string; lines: string[] } | undefined;
  const close = () => {
    if (!current) return;
    const lines = current.lines;
    while (lines.length > 0 && lines.at(-1)?.trim() === '') lines.pop();
    let exitCode = 0;
    const last = lines.at(-1);
    const exit = last === undefined ? null : EXIT.exec(last);
    if (last !== undefined && exit) {
      exitCode = Number(exit[1]);
      const rest = last.slice(0, exit.index);
      lines.pop();
      if (rest.trim() !== '') lines.push(rest);
    }
    while (lines.length > 0 && lines.at(-1)?.trim() === '') lines.pop();
    sections.push({ command: current.command, output: lines.join('\n'), exitCode });
  };
  for (const line of text.split('\n')) {
    const header = HEADER.exec(line);
    if (header) {
      close();
      current = { command: (header[1] ?? '').trim(), lines: [] };
    } else current?.lines.push(line);
  }
  close();
  return sections;
}

/** A lookup by exact command line; the last section wins when a command ran twice. */
export function transcriptOutputs(sections: readonly TranscriptSection[]): CommandOutputs {
  const byCommand = new Map(sections.map((s) => [s.command, s] as const));
  return (command) => byCommand.get(command);
}
