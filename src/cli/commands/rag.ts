import type { Command } from 'commander';
import { ApertusError } from '../../core/errors.js';
import type { RagIngestResult } from '../../core/operations/rag-ingest.js';
import { withExamples } from '../help-text.js';
import { runInterruptible } from '../interrupt.js';
import type { CliIO } from '../io.js';
import { writeJson } from '../output/json-output.js';
import { ReportedFailure } from '../reported-failure.js';
import { runOnFleet } from './fleet-command.js';
import { hostTarget, withHostTargetOptions } from './host-target.js';
import { type InventoryFlags, inventoryTargetsOf, withInventoryOptions } from './inventory-flags.js';

const RESUME_HINT =
  'Documents sent so far are stored; run the same command again to send the rest (stored ones are skipped).';

interface RagIngestFlags extends InventoryFlags {
  collection?: string;
  service?: string;
  json?: boolean;
}

/**
 * A collection is one RAG service of the release (the gateway's `rag:NAME` scope names it
 * the same way): --collection and --service are two names for one choice.
 */
function collectionOf(flags: RagIngestFlags): string | undefined {
  if (flags.collection !== undefined && flags.service !== undefined && flags.collection !== flags.service) {
    throw new ApertusError(
      'usage',
      `--collection ${flags.collection} and --service ${flags.service} name two different RAG services.`,
      { hint: 'A collection is the RAG service that holds it: pass one of the two.' },
    );
  }
  return flags.collection ?? flags.service;
}

export function registerRag(program: Command, io: CliIO): void {
  const rag = program.command('rag').description("Work with a host's RAG service: ingest documents");
  const ingest = withInventoryOptions(
    withHostTargetOptions(
      rag
        .command('ingest')
        .description(
          'Send documents (text, Markdown, HTML, PDF, DOCX; directories walked) to the RAG service of the current release; a document already stored with the same sha256 is skipped, so an interrupted run is resumed by running it again',
        )
        .argument('<paths...>', 'files and directories of documents on this machine'),
      { local: 'this machine', root: 'per-host' },
    ),
    'ingest into',
  )
    .option(
      '--collection <name>',
      "the collection: the release's RAG service that holds it (default: its only one)",
    )
    .option('--service <name>', 'the same as --collection')
    .option('--json', 'print only the JSON result on stdout')
    .action(async (paths: string[], flags: RagIngestFlags) => {
      const { ragIngest } = await import('../../core/operations/rag-ingest.js');
      const service = collectionOf(flags);
      const fleet = await inventoryTargetsOf(flags, io);
      if (fleet) {
        // Each host's own collection: the same documents go to every host.
        await runOnFleet(
          io,
          fleet,
          { json: flags.json, hint: RESUME_HINT, format: formatRagIngest },
          (host, signal, onProgress) =>
            ragIngest({
              target: host.target,
              root: host.root,
              paths,
              service,
              signal,
              onProgress,
            }),
        );
        return;
      }
      const target = await hostTarget(flags, io);
      const result = await runInterruptible(io, RESUME_HINT, (signal) =>
        ragIngest({
          target,
          root: flags.root,
          paths,
          service,
          signal,
          onProgress: flags.json
            ? undefined
            : (event) => {
                if (event.step === 'rag.ingest' && event.status !== 'start')
                  io.stderr.write(`${event.detail}\n`);
              },
        }),
      );
      if (flags.json) writeJson(io, result);
      else io.stdout.write(formatRagIngest(result));
      if (!result.ok) throw new ReportedFailure();
    });
  withExamples(ingest, [
    { run: 'rag ingest --host root@10.0.0.5 ./policies', does: 'every document under ./policies, resumable' },
    { run: 'rag ingest --local report.pdf memo.docx --json', does: 'two files into this machine, as JSON' },
    {
      run: 'rag ingest --host root@10.0.0.5 --collection wards ./wards',
      does: 'into the collection (RAG service) wards, when the release has several',
    },
    {
      run: 'rag ingest --inventory hosts.yaml --limit rack-a ./policies',
      does: 'the same documents on every host',
    },
  ]);
}

export function formatRagIngest(result: RagIngestResult): string {
  const { summary } = result;
  const lines = [
    `${result.documents.length} documents for RAG service ${result.service} on ${result.host}: ${summary.ingested} ingested, ${summary.replaced} replaced, ${summary.skipped} skipped (unchanged), ${summary.failed} failed`,
  ];
  for (const d of result.documents.filter((x) => x.status === 'failed'))
    lines.push(`  FAILED ${d.source}: ${d.detail}`);
  return `${lines.join('\n')}\n`;
}
