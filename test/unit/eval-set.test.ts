import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isApertusError } from '../../src/core/errors.js';
import { loadEvalSets, parseEvalJsonl } from '../../src/core/eval/eval-set.js';
import { runCli } from '../helpers/run-cli.js';

function parseError(text: string): { code: string; message: string; kind: string } {
  try {
    parseEvalJsonl(text, 'set.jsonl');
  } catch (error) {
    if (isApertusError(error)) return { code: error.code, message: error.message, kind: error.kind };
    throw error;
  }
  throw new Error('parsed without error');
}

describe('evaluation set JSONL', () => {
  it('reads questions, skipping blank and # lines; ids default to the line', () => {
    const cases = parseEvalJsonl(
      [
        '# comment',
        '{"question": "Where is the pharmacy?", "expect": "floor", "sources": ["pharmacy.md"]}',
        '',
        '{"id": "ref", "question": "Q?", "reference": "the answer", "expect": ["a", "b"]}',
      ].join('\n'),
      'set.jsonl',
    );
    expect(cases).toEqual([
      {
        id: 'line-2',
        question: 'Where is the pharmacy?',
        expect: ['floor'],
        reference: null,
        sources: ['pharmacy.md'],
      },
      { id: 'ref', question: 'Q?', expect: ['a', 'b'], reference: 'the answer', sources: [] },
    ]);
  });

  it('refuses a bad line naming the file and its line number (user error)', () => {
    const good = '{"question": "ok?"}';
    expect(parseError([good, '{"question": "x", '].join('\n'))).toMatchObject({
      code: 'eval-set-invalid',
      kind: 'user',
      message: expect.stringMatching(/^set\.jsonl:2: not JSON/),
    });
    expect(parseError([good, '', '{"answer": "x"}'].join('\n')).message).toMatch(/^set\.jsonl:3: question: /);
    expect(parseError([good, '{"question": "q", "colour": 1}'].join('\n')).message).toMatch(
      /^set\.jsonl:2: .*colour/,
    );
    expect(parseError([good, '{"question": "q", "expect": "("}'].join('\n')).message).toMatch(
      /^set\.jsonl:2: expect: .*regular expression/,
    );
    expect(
      parseError(['{"id": "a", "question": "q"}', '{"id": "a", "question": "r"}'].join('\n')).message,
    ).toBe('set.jsonl:2: id "a" is also the id of line 1');
    expect(parseError('# only a comment\n').message).toMatch(/holds no questions/);
  });

  it('loads a set with its documents from the recipe directory, refusing paths outside it', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'apertus-eval-set-'));
    try {
      await writeFile(path.join(dir, 'set.jsonl'), '{"question": "q", "sources": ["a.md"]}\n');
      await writeFile(path.join(dir, 'a.md'), '# A\n\ntext');
      const [set] = await loadEvalSets(
        dir,
        [{ name: 's', file: 'set.jsonl', maxTokens: 8, documents: ['a.md'] }],
        (needsRag) => (needsRag ? 'rag' : 'llm'),
      );
      expect(set).toMatchObject({
        name: 's',
        service: 'rag',
        sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
        documents: [{ name: 'a.md', format: 'markdown', text: '# A\n\ntext' }],
      });
      await expect(
        loadEvalSets(dir, [{ name: 's', file: '../x.jsonl', maxTokens: 8, documents: [] }], () => 'llm'),
      ).rejects.toMatchObject({ code: 'eval-set-invalid', message: expect.stringContaining('outside') });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('apertus bundle with a bad evaluation set', () => {
  let work: string;
  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'apertus-eval-bundle-'));
    await cp('bundles/demo', path.join(work, 'demo'), { recursive: true });
    const set = path.join(work, 'demo', 'eval', 'hospital.jsonl');
    const lines = (await readFile(set, 'utf8')).split('\n');
    lines.splice(7, 0, '{"question": "Where?", "sources": "pharmacy.md"}');
    await writeFile(set, lines.join('\n'));
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('exits 2 naming the file and line, before anything is written', async () => {
    const out = path.join(work, 'out');
    const run = await runCli(['bundle', path.join(work, 'demo'), '-o', out, '--no-cli', '--json']);
    expect(run.exitCode).toBe(2);
    const { error } = JSON.parse(run.stdout) as { error: { code: string; message: string; hint: string } };
    expect(error.code).toBe('eval-set-invalid');
    expect(error.message).toContain(`${path.join(work, 'demo', 'eval', 'hospital.jsonl')}:8: sources:`);
    expect(error.hint).toContain('"question"');
    expect(await readdir(out).catch(() => [])).toEqual([]);
  });
});
