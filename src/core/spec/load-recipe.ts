import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { isNode, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { ApertusError } from '../errors.js';
import { type Recipe, recipeSchema } from './recipe-schema.js';

/** The file name a recipe directory holds. */
export const RECIPE_FILE = 'apertus.yaml';

export interface RecipeProblem {
  file: string;
  /** YAML path, e.g. 'services[0].port'. */
  path: string;
  line: number;
  column: number;
  message: string;
}

export interface LoadedRecipe {
  recipe: Recipe;
  /** The recipe file itself. */
  file: string;
  /** Sources are resolved against this directory. */
  dir: string;
  bytes: Buffer;
}

/** Load and validate a recipe: a directory holding apertus.yaml, or the file itself. */
export async function loadRecipe(recipePath: string): Promise<LoadedRecipe> {
  const file = await resolveRecipeFile(recipePath);
  const bytes = await readFile(file);
  const lineCounter = new LineCounter();
  const doc = parseDocument(bytes.toString('utf8'), { lineCounter, prettyErrors: false, uniqueKeys: true });

  if (doc.errors.length > 0) {
    const problems = doc.errors.map((error) => {
      const pos = lineCounter.linePos(error.pos[0]);
      return { file, path: '', line: pos.line, column: pos.col, message: error.message.split('\n')[0] ?? '' };
    });
    throw recipeError(file, problems, 'is not valid YAML');
  }

  const parsed = recipeSchema.safeParse(doc.toJS());
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => locateIssue(file, doc, lineCounter, issue));
    throw recipeError(file, problems, 'does not match the recipe schema (apertus.dev/v1, kind Bundle)');
  }
  return { recipe: parsed.data, file, dir: path.dirname(file), bytes };
}

async function resolveRecipeFile(recipePath: string): Promise<string> {
  const absolute = path.resolve(recipePath);
  const info = await stat(absolute).catch(() => undefined);
  if (!info) {
    throw new ApertusError('recipe-not-found', `No recipe at ${recipePath}.`, {
      hint: `Pass a recipe directory holding ${RECIPE_FILE} (e.g. bundles/demo) or the YAML file itself.`,
    });
  }
  return info.isDirectory() ? path.join(absolute, RECIPE_FILE) : absolute;
}

/** A zod issue located in its YAML document: file, YAML path, line and column. Shared with the inventory loader. */
export function locateIssue(
  file: string,
  doc: ReturnType<typeof parseDocument>,
  lineCounter: LineCounter,
  issue: z.core.$ZodIssue,
): RecipeProblem {
  const keys = issue.path.map((key) => (typeof key === 'symbol' ? String(key) : key));
  // Walk up to the deepest node that exists: a missing key is reported where its parent is.
  let offset = 0;
  for (let depth = keys.length; depth >= 0; depth--) {
    const node = doc.getIn(keys.slice(0, depth), true);
    if (isNode(node) && node.range) {
      offset = node.range[0];
      break;
    }
  }
  // An unknown key is best shown at the key itself, which getIn cannot reach.
  if (issue.code === 'unrecognized_keys') {
    const found = findKeyOffset(doc, keys, issue.keys[0]);
    if (found !== undefined) offset = found;
  }
  const pos = lineCounter.linePos(offset);
  const message =
    issue.code === 'unrecognized_keys' ? `unknown field "${issue.keys.join('", "')}"` : issue.message;
  return { file, path: formatPath(keys), line: pos.line, column: pos.col, message };
}

function findKeyOffset(
  doc: ReturnType<typeof parseDocument>,
  keys: Array<string | number>,
  key: string | undefined,
): number | undefined {
  const map = doc.getIn(keys, true) as { items?: Array<{ key: unknown }> } | undefined;
  for (const pair of map?.items ?? []) {
    if (isNode(pair.key) && (pair.key as { value?: unknown }).value === key) return pair.key.range?.[0];
  }
  return undefined;
}

function formatPath(keys: Array<string | number>): string {
  return keys.reduce<string>(
    (out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${key}` : key),
    '',
  );
}

function recipeError(file: string, problems: RecipeProblem[], what: string): ApertusError {
  const lines = problems.map(
    (p) => `  ${p.file}:${p.line}:${p.column}${p.path ? ` ${p.path}` : ''}: ${p.message}`,
  );
  return new ApertusError('recipe-invalid', `The recipe ${file} ${what}:\n${lines.join('\n')}`, {
    hint: 'Fix the fields named above; `apertus schema` prints the JSON Schema for editors.',
    details: { problems },
  });
}
