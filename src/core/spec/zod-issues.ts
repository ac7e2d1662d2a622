/**
 * zod issues in one line, for documents read as data (bundle configs, manifests, model
 * configs). Its own module, needing only zod, so that what it is imported by stays free of
 * the schemas it describes (the bundle schema is built from the runtime registry).
 */
import type { z } from 'zod';

/** zod issues as one line: "components.0.kind: Invalid option ...; layers: ...". */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.length === 0 ? '(root)' : issue.path.join('.')}: ${issue.message}`)
    .join('; ');
}
