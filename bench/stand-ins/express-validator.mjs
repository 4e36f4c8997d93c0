// Express 5 with express-openapi-validator on our contract (requests and responses validated), every operation
// answered by the smallest valid response: what the validator alone leaves of bare Express. PORT from the environment.
// The validator is patched as the server patches it (dist/http/validator-patches.js), so this is the ceiling it
// leaves to us, not the library's figure before those patches.
import express from 'express';
import * as OpenApiValidator from 'express-openapi-validator';
import { readFileSync } from 'node:fs';
import { patchValidator } from '../../dist/http/validator-patches.js';

patchValidator();

const contract = JSON.parse(readFileSync(new URL('../../dist/openapi.json', import.meta.url), 'utf8'));
const app = express();
app.use(
  OpenApiValidator.middleware({
    apiSpec: contract,
    validateApiSpec: false,
    validateRequests: true,
    validateResponses: true,
    validateSecurity: false,
  }),
);
app.get('/healthz', (_req, res) => res.type('text/plain').send('OK'));
app.listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'));
