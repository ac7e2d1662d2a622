/**
 * PDF and DOCX ingest (templates/rag/document-readers.mjs) on files made by real writers
 * (test/helpers/office-files.ts): pages and headings kept and carried into each chunk's
 * location line (documents.mjs), and the refusals a user must be told about: a PDF that
 * needs a password, a PDF with no text layer, an encrypted or legacy Word file, and files
 * that are not what they claim.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { collectIngestFiles, documentIdFor } from '../../src/core/operations/rag-ingest.js';
import { DocumentRefusedError, readDocx, readPdf } from '../../templates/rag/document-readers.mjs';
import { chunkLocation, chunkSections, detectFormat } from '../../templates/rag/documents.mjs';
import {
  writeDocx,
  writeEncryptedPdf,
  writeImageOnlyPdf,
  writeTextPdf,
  writeZip,
} from '../helpers/office-files.js';

describe('PDF', () => {
  it('reads each page apart, with the document title, and every chunk names its page', async () => {
    const pdf = await writeTextPdf(
      [
        ['Ward 4 protocol', 'Visiting hours are ten to twelve.'],
        ['Dosage: paracetamol one gram every six hours,', 'at most four grams a day.'],
        [],
        ['Night staff hold the key to the emergency cabinet.'],
      ],
      'Ward protocol',
    );
    const read = await readPdf(pdf);
    expect(read.title).toBe('Ward protocol');
    expect(read.sections.map((s: { page: number }) => s.page)).toEqual([1, 2, 4]);
    expect(read.sections[1].text).toContain('paracetamol one gram every six hours');
    const chunks = chunkSections(read.sections, { size: 200, overlap: 20 });
    expect(chunks.map((c: string) => chunkLocation(c).page)).toEqual([1, 2, 4]);
    expect(chunks[1]).toMatch(/^\[page 2\]\nDosage: paracetamol/);
  });

  it('refuses a PDF that needs a password, saying how to decrypt it', async () => {
    const error = await readPdf(await writeEncryptedPdf()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DocumentRefusedError);
    expect((error as Error).message).toMatch(/encrypted and needs a password.*qpdf --decrypt/);
  });

  it('refuses a PDF with no text layer, saying to run OCR', async () => {
    const error = await readPdf(await writeImageOnlyPdf(3)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DocumentRefusedError);
    expect((error as Error).message).toMatch(/3 pages hold no text layer.*ocrmypdf/);
  });

  it('refuses what is not a PDF, and a truncated one', async () => {
    await expect(readPdf(Buffer.from('hello'))).rejects.toThrow(/not a PDF/);
    const pdf = await writeTextPdf([['text']]);
    await expect(readPdf(pdf.subarray(0, 200))).rejects.toThrow(DocumentRefusedError);
  });
});

describe('DOCX', () => {
  it('reads sections under their headings; chunks name the section', async () => {
    const docx = writeDocx([
      { heading: 1, text: 'Visitor guide' },
      { text: 'Visiting hours are ten to twelve & four to seven.' },
      { heading: 2, text: 'Parking "north"' },
      { text: 'The first hour is free.' },
      { text: 'Ambulances use the south gate.' },
    ]);
    const read = await readDocx(docx);
    expect(read.title).toBe('Visitor guide');
    expect(read.sections).toEqual([
      { page: null, heading: 'Visitor guide', text: 'Visiting hours are ten to twelve & four to seven.' },
      {
        page: null,
        heading: 'Parking "north"',
        text: 'The first hour is free.\n\nAmbulances use the south gate.',
      },
    ]);
    const chunks = chunkSections(read.sections, { size: 300, overlap: 30 });
    expect(chunks.map((c: string) => chunkLocation(c))).toEqual([
      { page: null, section: 'Visitor guide' },
      { page: null, section: 'Parking "north"' },
    ]);
  });

  it('refuses an encrypted or legacy Word file (OLE), a zip that is no DOCX, and plain bytes', async () => {
    const ole = Buffer.concat([
      Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]),
      Buffer.alloc(504),
    ]);
    await expect(readDocx(ole)).rejects.toThrow(/encrypted \(password-protected\) DOCX, or a legacy \.doc/);
    await expect(readDocx(writeZip([{ name: 'a.txt', data: 'x' }]))).rejects.toThrow(/DOCX cannot be read/);
    await expect(readDocx(Buffer.from('PK nothing'))).rejects.toThrow(/not a DOCX/);
    // A zip bomb's central directory declares gigabytes: refused before anything is inflated.
    const bomb = writeDocx([{ text: 'small' }]);
    const directory = bomb.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
    bomb.writeUInt32LE(0xfff00000, directory + 24);
    await expect(readDocx(bomb)).rejects.toThrow(/declares \d+ bytes unpacked.*zip bomb/);
    await expect(readDocx(writeDocx([{ heading: 1, text: 'Only a heading' }]))).rejects.toThrow(
      /holds no text/,
    );
  });
});

describe('location lines', () => {
  it('are read only from chunks that start with one, and formats come from the source name', () => {
    expect(chunkLocation('[page 12, section "A \\"b\\""]\ntext')).toEqual({ page: 12, section: 'A "b"' });
    expect(chunkLocation('text [page 3]\n')).toEqual({ page: null, section: null });
    expect(chunkLocation('[]\ntext')).toEqual({ page: null, section: null });
    expect(chunkLocation(`[page ${'9'.repeat(50)}]\nx`)).toEqual({ page: null, section: null });
    expect(detectFormat(undefined, 'Report.PDF', '')).toBe('pdf');
    expect(detectFormat(undefined, 'memo.docx?x=1', '')).toBe('docx');
    expect(detectFormat(undefined, 'memo.doc', 'x')).toBe('text');
  });
});

describe('rag ingest: which files, under which ids', () => {
  it('makes ids the service accepts from any path, walks without following links, and refuses what it cannot send', async () => {
    expect(documentIdFor('wards/ward 4/protocol (v2).pdf')).toBe('wards:ward-4:protocol--v2-.pdf');
    expect(documentIdFor('../../etc/passwd.txt')).toMatch(/^d\.\.:\.\.:etc:passwd\.txt$/);
    expect(documentIdFor('ü.md')).toBe('d-.md');
    const long = documentIdFor(`${'a/'.repeat(150)}x.md`);
    expect(long.length).toBe(200);
    expect(long).toMatch(/^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}$/);
    const dir = await mkdtemp(path.join(tmpdir(), 'apertus-ingest-files-'));
    try {
      await mkdir(path.join(dir, 'docs', '.hidden'), { recursive: true });
      await writeFile(path.join(dir, 'docs', 'a.md'), '# a');
      await writeFile(path.join(dir, 'docs', '.hidden', 'b.md'), '# b');
      await writeFile(path.join(dir, 'secret.txt'), 'outside');
      await symlink(path.join(dir, 'secret.txt'), path.join(dir, 'docs', 'link.txt'));
      const files = await collectIngestFiles([path.join(dir, 'docs')]);
      expect(files.map((f) => f.id)).toEqual(['a.md']);
      await expect(collectIngestFiles([path.join(dir, 'docs', 'link.txt')])).rejects.toThrow(/symbolic link/);
      await expect(collectIngestFiles([path.join(dir, 'secret.bin')])).rejects.toThrow(/does not exist/);
      await writeFile(path.join(dir, 'x.exe'), '');
      await expect(collectIngestFiles([path.join(dir, 'x.exe')])).rejects.toThrow(/not a document/);
      await mkdir(path.join(dir, 'other'));
      await writeFile(path.join(dir, 'other', 'a.md'), '# a again');
      await expect(collectIngestFiles([path.join(dir, 'docs'), path.join(dir, 'other')])).rejects.toThrow(
        /would both be document "a.md"/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
