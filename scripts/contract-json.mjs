// Build step: the contract as JSON in dist/, so the server starts without parsing YAML (~0.1 s of start-up).
// contracts/openapi.yaml stays the one source; this is its compiled form.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { parse } from 'yaml';

const root = new URL('../', import.meta.url);
mkdirSync(new URL('dist/', root), { recursive: true });
writeFileSync(new URL('dist/openapi.json', root), JSON.stringify(parse(readFileSync(new URL('contracts/openapi.yaml', root), 'utf8'))));
