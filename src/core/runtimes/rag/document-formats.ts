/**
 * The documents the RAG service ingests, by file extension, and the format each is sent
 * as (templates/rag/documents.mjs reads text, Markdown and HTML; document-readers.mjs PDF
 * and DOCX).
 */
export type DocumentFormat = 'text' | 'markdown' | 'html' | 'pdf' | 'docx';

export const DOCUMENT_FORMATS: Readonly<Record<string, DocumentFormat>> = {
  '.txt': 'text',
  '.text': 'text',
  '.md': 'markdown',
  '.markdown': 'markdown',
  '.html': 'html',
  '.htm': 'html',
  '.pdf': 'pdf',
  '.docx': 'docx',
};
