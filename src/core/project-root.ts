import { fileURLToPath } from 'node:url';

/**
 * The apertus installation this code runs from (the directory holding templates/ and
 * node_modules/): two levels above this file both as src/core/*.ts and dist/core/*.js.
 */
export const PROJECT_ROOT = fileURLToPath(new URL('../../', import.meta.url));
