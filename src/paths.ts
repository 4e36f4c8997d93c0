import { fileURLToPath } from 'node:url';

// This file sits at the top of src/ and of dist/, so the project root is one level up from either.
const root = new URL('../', import.meta.url);

export const CONTRACT_PATH = fileURLToPath(new URL('contracts/openapi.yaml', root));
/** The contract compiled to JSON by the build (scripts/contract-json.mjs). */
export const CONTRACT_JSON_PATH = fileURLToPath(new URL('dist/openapi.json', root));
export const DOCS_PAGE_PATH = fileURLToPath(new URL('dist/docs/index.html', root));
