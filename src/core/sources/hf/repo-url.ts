/**
 * The Hub page of a repository at a commit (`https://huggingface.co/ORG/NAME/tree/<sha>`),
 * recorded as provenance. Credentials in the endpoint URL (a mirror written as
 * https://user:pass@host) never reach the bundle.
 */
export function hfRepoTreeUrl(endpoint: string, repo: string, revision: string): string {
  const url = new URL(endpoint);
  url.username = '';
  url.password = '';
  url.search = '';
  url.hash = '';
  const base = url.toString().replace(/\/+$/, '');
  return `${base}/${repo.split('/').map(encodeURIComponent).join('/')}/tree/${encodeURIComponent(revision)}`;
}
