/**
 * Evaluation sets: JSONL files next to a recipe, one question a line, read and checked when
 * the bundle is made and carried in the bundle config (so the signature covers them and the
 * host's release.json holds them for `apertus eval`). A line is
 *
 *   {"id"?: "...", "question": "...", "expect"?: "REGEX" | ["REGEX", ...],
 *    "reference"?: "an answer", "sources"?: ["document id or source", ...]}
 *
 * `expect` patterns must all match the answer; `reference` must appear in it (case and runs
 * of white space ignored). A line with neither is not judged for accuracy. `sources` names
 * the documents retrieval should find: a document id in the collection, or the `source` a
 * document was ingested with (`apertus rag ingest` sends the path; a set's own documents
 * are ingested with their file name).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ApertusError } from '../errors.js';
import { DOCUMENT_FORMATS } from '../runtimes/rag/document-formats.js';
import { answerPattern, LIMITS, multiLineText, oneLineText, resourceName } from '../spec/safe-values.js';
import { describeIssues } from '../spec/zod-issues.js';

/** Bounds that keep a set inside the bundle config (which every command reads whole). */
export const EVAL_LIMITS = {
  cases: 1000,
  documents: 100,
  documentBytes: 256 * 1024,
  setBytes: 2 * 1024 * 1024,
};

const caseId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'an id is letters, digits and . _ : - (max 128)');

export const evalCaseSchema = z
  .object({
    id: caseId.optional(),
    question: multiLineText(16_384).min(1),
    expect: z.union([answerPattern, z.array(answerPattern).min(1).max(16)]).optional(),
    reference: oneLineText(4096).min(1).optional(),
    sources: z.array(oneLineText(2000).min(1)).min(1).max(32).optional(),
  })
  .strict();

/** One question as the bundle carries it: `expect` always a list, the id always set. */
export interface EvalCase {
  id: string;
  question: string;
  expect: string[];
  reference: string | null;
  sources: string[];
}

/** A document a set brings and ingests for its run (removed afterwards). */
export interface EvalDocument {
  /** Its file name: the `source` it is ingested with, which `sources` name. */
  name: string;
  format: 'text' | 'markdown' | 'html';
  text: string;
}

export interface EvalSet {
  name: string;
  /** The service asked: a RAG service for questions with `sources`. */
  service: string;
  /** SHA-256 of the JSONL file the set was read from. */
  sha256: string;
  maxTokens: number;
  cases: EvalCase[];
  documents: EvalDocument[];
}

/** Metric floors (and latency ceilings) a release must reach; each optional. */
export interface EvalThresholds {
  accuracy?: number | undefined;
  hitAtK?: number | undefined;
  mrr?: number | undefined;
  latencyP50Ms?: number | undefined;
  latencyP95Ms?: number | undefined;
  tokensPerSecond?: number | undefined;
}

/** What the bundle config's `verify.eval` holds. */
export interface EvalSpec {
  /** How many passages retrieval returns for hit@k and MRR. */
  k: number;
  thresholds: EvalThresholds;
  sets: EvalSet[];
}

const share = z.number().min(0).max(1);
const positive = z.number().positive().max(1e9);

export const evalThresholdsSchema = z
  .object({
    accuracy: share.optional().describe('lowest share of judged answers that match (0-1)'),
    hitAtK: share
      .optional()
      .describe('lowest share of questions whose expected source is in the top k (0-1)'),
    mrr: share.optional().describe('lowest mean reciprocal rank of the first expected source (0-1)'),
    latencyP50Ms: positive.optional().describe('highest median answer latency, ms'),
    latencyP95Ms: positive.optional().describe('highest 95th percentile answer latency, ms'),
    tokensPerSecond: positive.optional().describe('lowest generated tokens per second over the set'),
  })
  .strict();

const documentSchema = z.object({
  name: oneLineText(255).min(1),
  format: z.enum(['text', 'markdown', 'html']),
  text: multiLineText(EVAL_LIMITS.documentBytes).min(1),
});

/** The bundle's copy, checked again when a bundle or a release record is read. */
export const evalSpecSchema: z.ZodType<EvalSpec> = z.object({
  k: LIMITS.topK,
  thresholds: evalThresholdsSchema,
  sets: z
    .array(
      z.object({
        name: resourceName,
        service: resourceName,
        sha256: z.string().regex(/^[0-9a-f]{64}$/),
        maxTokens: LIMITS.maxTokens,
        cases: z
          .array(
            z.object({
              id: caseId,
              question: multiLineText(16_384).min(1),
              expect: z.array(answerPattern),
              reference: oneLineText(4096).min(1).nullable(),
              sources: z.array(oneLineText(2000).min(1)),
            }),
          )
          .min(1)
          .max(EVAL_LIMITS.cases),
        documents: z.array(documentSchema).max(EVAL_LIMITS.documents),
      }),
    )
    .min(1),
});

/**
 * Parses a set's JSONL text. Blank lines and lines starting with `#` are skipped; any other
 * line that is not a JSON object of the case shape fails the whole file, naming its line.
 */
export function parseEvalJsonl(text: string, file: string): EvalCase[] {
  const cases: EvalCase[] = [];
  const ids = new Map<string, number>();
  const lines = text.split('\n');
  const bad = (line: number, why: string) =>
    new ApertusError('eval-set-invalid', `${file}:${line}: ${why}`, {
      hint: 'Each line of an evaluation set is one JSON object: {"question": "...", "expect": "REGEX", "reference": "...", "sources": ["doc"]} (question required; # starts a comment line).',
    });
  lines.forEach((raw, i) => {
    const line = i + 1;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch (error) {
      throw bad(line, `not JSON (${(error as Error).message})`);
    }
    const parsed = evalCaseSchema.safeParse(value);
    if (!parsed.success) throw bad(line, describeIssues(parsed.error));
    const c = parsed.data;
    const id = c.id ?? `line-${line}`;
    const first = ids.get(id);
    if (first !== undefined) throw bad(line, `id "${id}" is also the id of line ${first}`);
    ids.set(id, line);
    const expect = c.expect === undefined ? [] : Array.isArray(c.expect) ? c.expect : [c.expect];
    cases.push({
      id,
      question: c.question,
      expect,
      reference: c.reference ?? null,
      sources: c.sources ?? [],
    });
  });
  if (cases.length === 0) throw bad(lines.length, 'the set holds no questions');
  if (cases.length > EVAL_LIMITS.cases) throw bad(lines.length, `more than ${EVAL_LIMITS.cases} questions`);
  return cases;
}

/** A set's own documents: the text formats the service ingests (PDF and DOCX go in by rag ingest). */
const SET_DOCUMENT_FORMATS = Object.fromEntries(
  Object.entries(DOCUMENT_FORMATS).filter(
    (entry): entry is [string, EvalDocument['format']] => entry[1] !== 'pdf' && entry[1] !== 'docx',
  ),
);

/** A set as the recipe names it (paths relative to the recipe directory). */
export interface RecipeEvalSet {
  name: string;
  file: string;
  service?: string | undefined;
  maxTokens: number;
  documents: string[];
}

/** Reads a recipe's sets from disk: their questions checked line by line, their documents read. */
export async function loadEvalSets(
  recipeDir: string,
  sets: readonly RecipeEvalSet[],
  defaultService: (needsRag: boolean) => string | undefined,
): Promise<EvalSet[]> {
  const read = async (relative: string, what: string) => {
    const file = path.resolve(recipeDir, relative);
    if (path.relative(recipeDir, file).startsWith('..')) {
      throw new ApertusError('eval-set-invalid', `${what} ${relative} lies outside the recipe directory.`, {
        hint: 'Keep evaluation sets and their documents next to the recipe (e.g. eval/NAME.jsonl).',
      });
    }
    return readFile(file).catch((error: NodeJS.ErrnoException) => {
      throw new ApertusError(
        'eval-set-missing',
        `${what} ${file} cannot be read (${error.code ?? error.message}).`,
        {
          hint: 'Fix the path under verify.eval.sets in the recipe (relative to the recipe directory).',
        },
      );
    });
  };
  const loaded: EvalSet[] = [];
  for (const set of sets) {
    const bytes = await read(set.file, `Evaluation set ${set.name}:`);
    if (bytes.length > EVAL_LIMITS.setBytes) {
      throw new ApertusError(
        'eval-set-invalid',
        `${set.file} is ${bytes.length} bytes; a set holds at most ${EVAL_LIMITS.setBytes}.`,
        {
          hint: 'Split it into several sets.',
        },
      );
    }
    const cases = parseEvalJsonl(bytes.toString('utf8'), path.join(recipeDir, set.file));
    const documents: EvalDocument[] = [];
    for (const doc of set.documents) {
      const format = SET_DOCUMENT_FORMATS[path.extname(doc).toLowerCase()];
      if (!format) {
        throw new ApertusError(
          'eval-set-invalid',
          `Evaluation set ${set.name}: document ${doc} is not text, Markdown or HTML.`,
          {
            hint: `A set's own documents end in ${Object.keys(SET_DOCUMENT_FORMATS).join(', ')}; ingest PDF and DOCX corpora with apertus rag ingest and name them in "sources".`,
          },
        );
      }
      const content = await read(doc, `Evaluation set ${set.name}: document`);
      if (content.length > EVAL_LIMITS.documentBytes) {
        throw new ApertusError(
          'eval-set-invalid',
          `${doc} is ${content.length} bytes; a set's document holds at most ${EVAL_LIMITS.documentBytes}.`,
          {
            hint: 'Ingest large corpora with apertus rag ingest and name their documents in "sources".',
          },
        );
      }
      const name = path.basename(doc);
      if (documents.some((d) => d.name === name)) {
        throw new ApertusError(
          'eval-set-invalid',
          `Evaluation set ${set.name} names two documents called ${name}.`,
          {
            hint: 'Documents of one set are known by file name: rename one.',
          },
        );
      }
      documents.push({ name, format, text: content.toString('utf8') });
    }
    const needsRag = cases.some((c) => c.sources.length > 0) || documents.length > 0;
    const service = set.service ?? defaultService(needsRag);
    if (service === undefined) {
      throw new ApertusError(
        'eval-set-invalid',
        `Evaluation set ${set.name} names no service, and the recipe has none to ask.`,
        {
          hint: 'Add a service to the recipe, or set verify.eval.sets[].service.',
        },
      );
    }
    loaded.push({
      name: set.name,
      service,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      maxTokens: set.maxTokens,
      cases,
      documents,
    });
  }
  return loaded;
}
