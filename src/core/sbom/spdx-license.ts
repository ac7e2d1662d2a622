/**
 * Licence strings as CycloneDX wants them: an SPDX id where the string is one (matched
 * without regard to case, since the Hugging Face Hub writes `apache-2.0`), an SPDX
 * expression where it is one (`(MIT OR Apache-2.0)`), else the string as a licence name
 * (`llama3`, `other`), which CycloneDX takes as it is.
 */

/**
 * The SPDX ids met in model cards, image labels, npm and Python packages. Not the whole
 * SPDX list (it has 600 entries and changes): an id missing here is written as a name,
 * which is still a valid SBOM. test/unit/sbom-spdx.test.ts checks each against the SPDX list.
 */
const KNOWN_IDS = [
  '0BSD',
  'AFL-2.1',
  'AGPL-3.0-only',
  'AGPL-3.0-or-later',
  'Apache-2.0',
  'Artistic-2.0',
  'BlueOak-1.0.0',
  'BSD-2-Clause',
  'BSD-3-Clause',
  'BSL-1.0',
  'CC-BY-4.0',
  'CC-BY-NC-4.0',
  'CC-BY-NC-SA-4.0',
  'CC-BY-SA-4.0',
  'CC0-1.0',
  'EPL-2.0',
  'GPL-2.0-only',
  'GPL-2.0-or-later',
  'GPL-3.0-only',
  'GPL-3.0-or-later',
  'HPND',
  'ISC',
  'LGPL-2.1-only',
  'LGPL-2.1-or-later',
  'LGPL-3.0-only',
  'LGPL-3.0-or-later',
  'MIT',
  'MIT-0',
  'MPL-2.0',
  'OpenSSL',
  'PSF-2.0',
  'Python-2.0',
  'Unicode-3.0',
  'Unicode-DFS-2016',
  'Unlicense',
  'WTFPL',
  'Zlib',
] as const;

const BY_LOWER_CASE: ReadonlyMap<string, string> = new Map(KNOWN_IDS.map((id) => [id.toLowerCase(), id]));

export const SPDX_IDS: readonly string[] = KNOWN_IDS;

/** One entry of a CycloneDX `licenses` array. */
export type CycloneDxLicense = { license: { id: string } | { name: string } } | { expression: string };

/** The canonical SPDX id for `value`, or undefined when it is not one this module knows. */
export function spdxId(value: string): string | undefined {
  return BY_LOWER_CASE.get(value.trim().toLowerCase());
}

/** An SPDX expression whose every licence is a known id: `(MIT OR Apache-2.0)`, `GPL-2.0-only WITH ...` is not. */
function spdxExpression(value: string): string | undefined {
  const tokens = value.match(/\(|\)|[^\s()]+/g) ?? [];
  if (!tokens.some((token) => token === 'OR' || token === 'AND')) return undefined;
  const out: string[] = [];
  for (const token of tokens) {
    if (token === '(' || token === ')' || token === 'OR' || token === 'AND') out.push(token);
    else {
      const id = spdxId(token);
      if (id === undefined) return undefined;
      out.push(id);
    }
  }
  return out.join(' ').replace(/\( /g, '(').replace(/ \)/g, ')');
}

/** The CycloneDX `licenses` array for a licence string; empty when there is none. */
export function cycloneDxLicenses(value: string | null | undefined): CycloneDxLicense[] {
  const text = value?.trim();
  if (!text) return [];
  const id = spdxId(text);
  if (id !== undefined) return [{ license: { id } }];
  const expression = spdxExpression(text);
  if (expression !== undefined) return [{ expression }];
  return [{ license: { name: text } }];
}
