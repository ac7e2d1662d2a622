import { describe, expect, it } from 'vitest';
import { chunkText, detectFormat, htmlToText, markdownToText } from '../../templates/rag/documents.mjs';

describe('RAG document text', () => {
  it('drops scripts, styles and comments from HTML, keeps text, title and entities', () => {
    const { text, title } = htmlToText(
      '<!doctype html><html><head><title>Ward &amp; Co</title><style>p{color:red}</style>' +
        '<script>document.write("<p>injected</p>")</script></head><body><h1>Intake</h1>' +
        '<p>Patients &lt;18 go to <b>ward&nbsp;3</b>.</p><!-- <p>hidden</p> --><SCRIPT type="x">evil()</SCRIPT >' +
        '<p title="a > b">a < b &#x263A; &#0; &bogus;</p><table><tr><td>x</td><td>y</td></tr></table></body></html>',
    );
    expect(title).toBe('Ward & Co');
    expect(text).toBe('Intake\n\nPatients <18 go to ward 3.\n\na < b \u263a \ufffd &bogus;\n\nx y');
    expect(text).not.toMatch(/injected|evil|hidden|color/);
  });

  it('reads hostile HTML and Markdown in linear time', () => {
    const started = Date.now();
    htmlToText('<a "'.repeat(100_000));
    htmlToText('<script>'.repeat(100_000));
    htmlToText('<!--'.repeat(100_000));
    markdownToText('[a'.repeat(100_000));
    markdownToText('**a'.repeat(5_000));
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('keeps the text of Markdown without link targets and markup', () => {
    const { text, title } = markdownToText(
      '# Visiting\n\nSee **the rules** and [the map](http://intranet/map).\n\n- one\n- two\n\n```\ncode\n```\n<!-- note -->',
    );
    expect(title).toBe('Visiting');
    expect(text).toBe('Visiting\n\nSee the rules and the map.\n\none\ntwo\n\ncode');
  });

  it('guesses the format from the source name or the content', () => {
    expect(detectFormat(undefined, 'docs/a.MD', 'x')).toBe('markdown');
    expect(detectFormat(undefined, 'https://x/page.html?q=1', 'x')).toBe('html');
    expect(detectFormat(undefined, null, '  <!DOCTYPE html><p>x')).toBe('html');
    expect(detectFormat(undefined, 'notes.txt', '# not markdown')).toBe('text');
    expect(detectFormat('html', 'a.md', 'x')).toBe('html');
  });

  it('chunks at natural breaks within the size, overlapping at word starts, covering all text', () => {
    const words = Array.from({ length: 400 }, (_, i) => `word${i}${i % 12 === 11 ? '.' : ''}`);
    const text = words.join(' ');
    const chunks = chunkText(text, { size: 200, overlap: 40 });
    expect(chunks.length).toBeGreaterThan(10);
    for (const chunk of chunks) {
      expect(chunk.length).toBeLessThanOrEqual(200);
      expect(chunk).toMatch(/^word\d+/);
    }
    // Every word is in some chunk, and neighbours share words.
    for (const word of words) expect(chunks.some((c) => c.split(' ').includes(word))).toBe(true);
    for (let i = 1; i < chunks.length; i++) {
      const previous = new Set((chunks[i - 1] as string).split(' '));
      expect((chunks[i] as string).split(' ').some((w) => previous.has(w))).toBe(true);
    }
    expect(chunkText('short text', { size: 200, overlap: 40 })).toEqual(['short text']);
    expect(chunkText('x'.repeat(450), { size: 200, overlap: 40 }).map((c) => c.length)).toEqual([
      200, 200, 130,
    ]);
  });
});
