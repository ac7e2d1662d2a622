// Documents to plain text, and plain text to overlapping chunks.
//
// HTML is read by a small linear scanner, not a regex over the whole page: no pattern here
// can backtrack, so a hostile page costs time in proportion to its size. Scripts, styles and
// other raw-text elements are dropped with their content, comments and declarations too;
// nothing is ever evaluated. Markdown keeps its text and loses link targets and markup.

const RAW_TEXT_ELEMENTS = new Set([
  'script',
  'style',
  'noscript',
  'template',
  'svg',
  'math',
  'iframe',
  'object',
  'title',
  'textarea',
]);
const BLOCK_ELEMENTS = new Set([
  'address',
  'article',
  'aside',
  'blockquote',
  'br',
  'dd',
  'details',
  'div',
  'dl',
  'dt',
  'figcaption',
  'figure',
  'footer',
  'form',
  'h1',
  'h2',
  'h3',
  'h4',
  'h5',
  'h6',
  'header',
  'hr',
  'li',
  'main',
  'nav',
  'ol',
  'p',
  'pre',
  'section',
  'summary',
  'table',
  'tbody',
  'thead',
  'tfoot',
  'tr',
  'ul',
  'body',
  'html',
  'caption',
]);
const CELL_ELEMENTS = new Set(['td', 'th']);
const NAMED_ENTITIES = {
  amp: '&',
  lt: '<',
  gt: '>',
  quot: '"',
  apos: "'",
  nbsp: ' ',
  ndash: '\u2013',
  mdash: '\u2014',
  hellip: '\u2026',
  lsquo: '\u2018',
  rsquo: '\u2019',
  ldquo: '\u201c',
  rdquo: '\u201d',
  laquo: '\u00ab',
  raquo: '\u00bb',
  copy: '\u00a9',
  reg: '\u00ae',
  trade: '\u2122',
  euro: '\u20ac',
  middot: '\u00b7',
  bull: '\u2022',
  deg: '\u00b0',
  times: '\u00d7',
};

export const FORMATS = ['text', 'markdown', 'html'];

export function decodeEntities(text) {
  return text.replace(/&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]{2,8});/g, (whole, name) => {
    if (name[0] === '#') {
      const code =
        name[1] === 'x' || name[1] === 'X'
          ? Number.parseInt(name.slice(2), 16)
          : Number.parseInt(name.slice(1), 10);
      if (code === 0 || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return '\ufffd';
      return String.fromCodePoint(code);
    }
    return NAMED_ENTITIES[name] ?? NAMED_ENTITIES[name.toLowerCase()] ?? whole;
  });
}

/** The end of the tag that opens at `start` ('<'), skipping quoted attribute values. */
function tagEnd(html, start) {
  let quote = null;
  for (let i = start + 1; i < html.length; i++) {
    const c = html[i];
    if (quote !== null) {
      if (c === quote) quote = null;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === '>') {
      return i;
    }
  }
  return html.length;
}

/** Plain text of an HTML page, and its <title>. */
export function htmlToText(html) {
  const out = [];
  let title = null;
  let i = 0;
  while (i < html.length) {
    const lt = html.indexOf('<', i);
    if (lt === -1) {
      out.push(html.slice(i));
      break;
    }
    out.push(html.slice(i, lt));
    if (html.startsWith('<!--', lt)) {
      const end = html.indexOf('-->', lt + 4);
      i = end === -1 ? html.length : end + 3;
      continue;
    }
    const next = html[lt + 1];
    if (next === '!' || next === '?') {
      const end = html.indexOf('>', lt);
      i = end === -1 ? html.length : end + 1;
      continue;
    }
    const match = /^<(\/?)([a-zA-Z][a-zA-Z0-9-]{0,31})/.exec(html.slice(lt, lt + 40));
    if (match === null) {
      out.push('<'); // a '<' in running text
      i = lt + 1;
      continue;
    }
    const closing = match[1] === '/';
    const name = match[2].toLowerCase();
    const end = tagEnd(html, lt);
    i = end + 1;
    const selfClosing = html[end - 1] === '/';
    if (!closing && !selfClosing && RAW_TEXT_ELEMENTS.has(name)) {
      const closer = new RegExp(`</${name}[\\s/>]`, 'gi');
      closer.lastIndex = i;
      const found = closer.exec(html);
      const contentEnd = found === null ? html.length : found.index;
      if (name === 'title' && title === null)
        title = normaliseWhitespace(decodeEntities(html.slice(i, contentEnd))) || null;
      if (name === 'textarea') out.push(html.slice(i, contentEnd));
      i = found === null ? html.length : tagEnd(html, found.index) + 1;
      continue;
    }
    if (BLOCK_ELEMENTS.has(name)) out.push('\n\n');
    else if (CELL_ELEMENTS.has(name)) out.push(' ');
  }
  return { text: normaliseWhitespace(decodeEntities(out.join(''))), title };
}

/** Longer lines keep their inline markup: the inline patterns below would cost quadratic time on them. */
const MAX_INLINE_LINE = 10_000;

function withoutComments(text) {
  const out = [];
  let i = 0;
  while (i < text.length) {
    const open = text.indexOf('<!--', i);
    if (open === -1) {
      out.push(text.slice(i));
      break;
    }
    out.push(text.slice(i, open));
    const close = text.indexOf('-->', open + 4);
    i = close === -1 ? text.length : close + 3;
  }
  return out.join('');
}

/** Markdown's text: link and image targets, emphasis and heading marks go. */
export function markdownToText(markdown) {
  let title = null;
  const lines = withoutComments(markdown).split(/\r?\n/);
  const kept = [];
  for (const line of lines) {
    if (/^\s*(```|~~~)/.test(line)) continue;
    const heading = /^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    let text = heading ? heading[1] : line;
    if (heading && title === null) title = text;
    if (text.length > MAX_INLINE_LINE) {
      kept.push(text);
      continue;
    }
    text = text
      .replace(/!\[([^\]]*)\]\([^)]*\)/g, '$1')
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .replace(/^\s{0,3}>\s?/, '')
      .replace(/^\s*(?:[-*+]|\d{1,9}[.)])\s+/, '')
      .replace(/(\*\*|__)(?=\S)([^*_]+?)\1/g, '$2')
      .replace(/`([^`]*)`/g, '$1');
    kept.push(heading ? `\n${text}\n` : text);
  }
  return { text: normaliseWhitespace(kept.join('\n')), title };
}

/** Runs of spaces become one space, three or more line breaks become a paragraph break. */
export function normaliseWhitespace(text) {
  return text
    .replace(/\r\n?/g, '\n')
    .replace(/[^\S\n]+/g, ' ')
    .replace(/ ?\n ?/g, '\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/** Formats sent as bytes (base64 in the request), read by document-readers.mjs. */
export const BINARY_FORMATS = ['pdf', 'docx'];

export function detectFormat(format, source, content) {
  if (format !== undefined) return format;
  const name = typeof source === 'string' ? source.toLowerCase().split(/[?#]/)[0] : '';
  if (/\.pdf$/.test(name)) return 'pdf';
  if (/\.docx$/.test(name)) return 'docx';
  if (/\.(md|markdown)$/.test(name)) return 'markdown';
  if (/\.(html?|xhtml)$/.test(name)) return 'html';
  if (/^\s*(<!doctype html|<html[\s>])/i.test(content.slice(0, 512))) return 'html';
  return 'text';
}

export function extractText(format, content) {
  if (format === 'html') return htmlToText(content);
  if (format === 'markdown') return markdownToText(content);
  return { text: normaliseWhitespace(content), title: null };
}

function isSpace(c) {
  return c === ' ' || c === '\n';
}

/** The best place to end a chunk in text[min, max): a paragraph, line, sentence or word end. */
function breakPoint(text, min, max) {
  const paragraph = text.lastIndexOf('\n\n', max - 2);
  if (paragraph >= min) return paragraph;
  const line = text.lastIndexOf('\n', max - 1);
  if (line >= min) return line;
  for (let i = max - 1; i > min; i--) {
    if (isSpace(text[i]) && '.!?;:'.includes(text[i - 1])) return i;
  }
  for (let i = max - 1; i > min; i--) if (isSpace(text[i])) return i;
  return max;
}

/**
 * Splits text into chunks of at most `size` characters that end at natural breaks where
 * one lies in their second half; each chunk after the first starts about `overlap`
 * characters before the previous one ended, at a word start.
 */
export function chunkText(text, { size, overlap }) {
  if (!(overlap >= 0 && overlap < size))
    throw new Error('overlap must be at least 0 and below the chunk size');
  const chunks = [];
  let start = 0;
  while (start < text.length) {
    while (start < text.length && isSpace(text[start])) start++;
    if (start >= text.length) break;
    let end = Math.min(start + size, text.length);
    if (end < text.length) end = breakPoint(text, start + Math.floor(size / 2), end);
    const piece = text.slice(start, end).trim();
    if (piece !== '') chunks.push(piece);
    if (end >= text.length) break;
    let next = Math.max(end - overlap, start + 1);
    // Start at a word where the overlap holds a space; text without spaces (CJK, say)
    // overlaps mid-word rather than not at all.
    if (next < end && !isSpace(text[next - 1])) {
      let at = next;
      while (at < end && !isSpace(text[at])) at++;
      if (at < end) next = at + 1;
    }
    start = next;
  }
  return chunks;
}

// ---- where a chunk comes from ---------------------------------------------------------------
//
// A chunk of a paged or sectioned document starts with one line naming its place,
// `[page 3]`, `[section "Dosage"]` or `[page 3, section "Dosage"]`, written here and read
// back by chunkLocation: the stores keep chunk text only, so the place travels in it, and
// the model sees it in its sources too, so it can cite the page. Plain text, Markdown and
// HTML chunks carry no such line.

const LOCATION_LINE = /^\[(?:page (\d{1,6}))?(?:, )?(?:section ("(?:[^"\\\n]|\\.){0,400}"))?\]\n/;

function locationLine({ page, heading }) {
  const parts = [];
  if (Number.isInteger(page)) parts.push(`page ${page}`);
  if (heading) parts.push(`section ${JSON.stringify(heading.replace(/\s+/g, ' ').slice(0, 200))}`);
  return parts.length === 0 ? '' : `[${parts.join(', ')}]\n`;
}

/**
 * Chunks each section apart (a chunk never spans two pages or two sections), each chunk
 * led by its location line; the line counts towards `size`.
 */
export function chunkSections(sections, { size, overlap }) {
  const chunks = [];
  for (const section of sections) {
    const line = locationLine(section);
    const room = Math.max(size - line.length, Math.floor(size / 2));
    for (const piece of chunkText(section.text, {
      size: room,
      overlap: Math.min(overlap, Math.floor(room / 2) - 1),
    }))
      chunks.push(`${line}${piece}`);
  }
  return chunks;
}

/** The page and section a chunk names in its location line, each null when absent. */
export function chunkLocation(text) {
  const match = LOCATION_LINE.exec(text ?? '');
  if (!match || (match[1] === undefined && match[2] === undefined)) return { page: null, section: null };
  let section = null;
  if (match[2] !== undefined) {
    try {
      section = JSON.parse(match[2]);
    } catch {
      section = null;
    }
  }
  return { page: match[1] === undefined ? null : Number(match[1]), section };
}
