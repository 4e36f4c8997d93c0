#!/usr/bin/env node
// Makes a new random token and prints the tokens_file entry for it (the SHA-256, never the token) and, once, the
// token itself for whoever will use it.
//
//   npm run token -- --name ci-main --scopes write[,delete,curate,read]
import { createHash, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

const SCOPES = ['read', 'write', 'delete'];
const USAGE = `usage: npm run -s token -- --name NAME [--scopes read|write|delete|curate[,…]] >> tokens.yaml

Makes a random token, prints it once on stderr for the client that will use it, and prints the tokens_file entry
(its name, scopes and SHA-256, never the token) on stdout. --scopes defaults to read.`;
const fail = (message) => {
  console.error(`token: ${message}\n${USAGE}`);
  process.exit(2);
};
let values;
try {
  ({ values } = parseArgs({ options: { name: { type: 'string' }, scopes: { type: 'string', default: 'read' }, help: { type: 'boolean', short: 'h' } } }));
} catch (err) {
  fail(err.message);
}
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
if (!values.name || !/^[A-Za-z0-9._-]{1,64}$/.test(values.name)) fail('--name needs letters, digits, ".", "_" or "-"');
const scopes = values.scopes.split(',').map((s) => s.trim()).filter(Boolean);
if (scopes.length === 0 || !scopes.every((s) => SCOPES.includes(s))) fail(`--scopes must be among ${SCOPES.join(', ')}`);

const token = `rs_${randomBytes(32).toString('base64url')}`;
const sha256 = createHash('sha256').update(token).digest('hex');
console.error(`token for "${values.name}" (shown once; store it as the client's secret):\n${token}\n`);
console.error('add this entry to the tokens file:');
console.log(`- name: ${values.name}\n  scopes: [${scopes.join(', ')}]\n  sha256: ${sha256}`);
