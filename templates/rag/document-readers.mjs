// PDF and DOCX to sections of text that remember where they came from: a PDF page by
// page (pdf.js through `unpdf`), a DOCX by its headings (`mammoth`), so a citation can
// name the page or the section. Both libraries are pure JavaScript, load only when such a
// document arrives, and travel in the runtime closure (RAG_PACKAGES in rag-service.ts).
//
// A DOCX has no pages: Word lays them out when it opens the file, so its sections carry the
// heading only. A PDF's headings are only font sizes, so its sections carry the page only.
//
// Refused with a message that says what to do: a PDF that needs a password (one encrypted
// with an owner password only opens without one, as in every reader, and is read), a PDF
// with no text layer (scanned pages), a DOCX that is an encrypted or legacy (.doc) OLE file
// rather than a zip, and files that are not what their format says. pdf.js runs with
// `isEvalSupported: false`, so no PDF can make it compile code.

import { htmlToText, normaliseWhitespace } from './documents.mjs';

export class DocumentRefusedError extends Error {
  constructor(message) {
    super(message);
    this.name = 'DocumentRefusedError';
  }
}

const PDF_MAGIC = '%PDF-';
const ZIP_MAGIC = Buffer.from([0x50, 0x4b, 0x03, 0x04]);
const OLE_MAGIC = Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]);
/** What a DOCX's parts may declare uncompressed in all, against zip bombs (a 12 MB upload). */
const MAX_DOCX_UNPACKED_BYTES = 256 * 1024 * 1024;
/** A page with fewer non-space characters than this is taken as holding no text. */
const MIN_TEXT_CHARS = 1;

/**
 * Reads a PDF: { title, sections: [{ page, heading: null, text }] }, one section per page
 * that has text.
 */
export async function readPdf(bytes) {
  const buffer = Buffer.from(bytes);
  // The header may sit after up to 1024 bytes of junk (PDF 1.7, 7.5.2).
  if (!buffer.subarray(0, 1024).toString('latin1').includes(PDF_MAGIC)) {
    throw new DocumentRefusedError('the file is not a PDF (no %PDF- header)');
  }
  const { getDocumentProxy, extractText, getMeta } = await import('unpdf');
  let pdf;
  try {
    pdf = await getDocumentProxy(new Uint8Array(buffer), { isEvalSupported: false, stopAtErrors: false });
  } catch (error) {
    if (error?.name === 'PasswordException') {
      throw new DocumentRefusedError(
        'the PDF is encrypted and needs a password to open; decrypt it (for example `qpdf --decrypt --password=... in.pdf out.pdf`) and ingest the decrypted file',
      );
    }
    throw new DocumentRefusedError(`the PDF cannot be read: ${error?.message ?? error}`);
  }
  try {
    const { text: pages } = await extractText(pdf, { mergePages: false });
    const sections = [];
    pages.forEach((pageText, i) => {
      const text = normaliseWhitespace(pageText);
      if (text.replace(/\s/g, '').length >= MIN_TEXT_CHARS)
        sections.push({ page: i + 1, heading: null, text });
    });
    if (sections.length === 0) {
      throw new DocumentRefusedError(
        `the PDF's ${pages.length} page${pages.length === 1 ? '' : 's'} hold no text layer (scanned images?); run OCR on it (for example \`ocrmypdf in.pdf out.pdf\`) and ingest the result`,
      );
    }
    let title = null;
    try {
      const { info } = await getMeta(pdf);
      if (typeof info?.Title === 'string' && info.Title.trim() !== '')
        title = info.Title.trim().slice(0, 1000);
    } catch {}
    return { title, sections };
  } finally {
    await pdf.destroy?.();
  }
}

/**
 * Reads a DOCX: { title, sections: [{ page: null, heading, text }] }, a new section at
 * each heading (Word's Heading 1-6 styles, and Title).
 */
export async function readDocx(bytes) {
  const buffer = Buffer.from(bytes);
  if (buffer.subarray(0, 8).equals(OLE_MAGIC)) {
    throw new DocumentRefusedError(
      'the file is an OLE compound file, not a DOCX zip: an encrypted (password-protected) DOCX, or a legacy .doc; remove the password or save it as .docx, then ingest it again',
    );
  }
  if (!buffer.subarray(0, 4).equals(ZIP_MAGIC))
    throw new DocumentRefusedError('the file is not a DOCX (not a zip archive)');
  const unpacked = declaredUnpackedBytes(buffer);
  if (unpacked > MAX_DOCX_UNPACKED_BYTES) {
    throw new DocumentRefusedError(
      `the DOCX declares ${unpacked} bytes unpacked, more than the ${MAX_DOCX_UNPACKED_BYTES} a document may hold (a zip bomb?)`,
    );
  }
  const mammoth = (await import('mammoth')).default;
  let html;
  try {
    ({ value: html } = await mammoth.convertToHtml(
      { buffer },
      // Images would come back as data: URIs the size of the image; text is all we keep.
      { convertImage: mammoth.images.imgElement(async () => ({ src: '' })) },
    ));
  } catch (error) {
    throw new DocumentRefusedError(`the DOCX cannot be read: ${error?.message ?? error}`);
  }
  const sections = [];
  let title = null;
  // mammoth writes well-formed HTML with escaped text, so splitting at heading tags is exact.
  const parts = html.split(/(<h[1-6][^>]*>[\s\S]*?<\/h[1-6]>)/);
  let heading = null;
  for (const part of parts) {
    const isHeading = /^<h[1-6][^>]*>/.test(part);
    const text = htmlToText(part).text;
    if (isHeading) {
      heading = text.slice(0, 200) || heading;
      title ??= heading;
      continue;
    }
    if (text !== '') sections.push({ page: null, heading, text });
  }
  if (sections.length === 0) throw new DocumentRefusedError('the DOCX holds no text');
  return { title, sections };
}

/**
 * The uncompressed sizes a zip's central directory declares, summed (APPNOTE.TXT 4.3.12,
 * 4.3.16). It catches the plain zip bomb; sizes that lie are not caught here (jszip
 * inflates what the entry holds), which is why uploads are capped at 16 MB.
 */
function declaredUnpackedBytes(buffer) {
  const from = Math.max(0, buffer.length - 22 - 65535);
  for (let end = buffer.length - 22; end >= from; end--) {
    if (buffer.readUInt32LE(end) !== 0x06054b50) continue;
    const entries = buffer.readUInt16LE(end + 10);
    let at = buffer.readUInt32LE(end + 16);
    let total = 0;
    for (let i = 0; i < entries && at + 46 <= buffer.length; i++) {
      if (buffer.readUInt32LE(at) !== 0x02014b50) break;
      total += buffer.readUInt32LE(at + 24);
      at += 46 + buffer.readUInt16LE(at + 28) + buffer.readUInt16LE(at + 30) + buffer.readUInt16LE(at + 32);
    }
    return total;
  }
  return 0;
}
