// The reference for small requests: bare Express 5 with one JSON route, answering every GET. PORT from the environment.
import express from 'express';

const app = express();
app.get('/{*path}', (_req, res) => res.json({ status: 'ok' }));
app.listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'));
