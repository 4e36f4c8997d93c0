// Build step after `redocly build-docs --inlineBundle`: the bundle still points its "API docs by Redocly" badge at
// a logo on a CDN, which the page's own CSP blocks (an error in every visitor's console) and which an air-gapped
// network cannot reach. The logo becomes an inline SVG of the same word, so the page needs nothing from elsewhere.
import { readFileSync, writeFileSync } from 'node:fs';

const page = new URL('../dist/docs/index.html', import.meta.url);
const svg = (width) =>
  `data:image/svg+xml,${encodeURIComponent(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="16" viewBox="0 0 ${width} 16"><text x="0" y="12" font-family="sans-serif" font-size="12" fill="#6b7280">Redocly</text></svg>`)}`;
const ICON = `<link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'%3E%3Crect x='3' y='8' width='26' height='20' rx='3' fill='%232563eb'/%3E%3Cpath d='M3 13h26M13 8v7h6V8' stroke='%23fff' stroke-width='2' fill='none'/%3E%3C/svg%3E">`;
let html = readFileSync(page, 'utf8');
const before = html;
html = html.replaceAll('https://cdn.redoc.ly/redoc/logo-mini-full.svg', svg(48)).replaceAll('https://cdn.redoc.ly/redoc/logo-mini.svg', svg(48));
if (html === before) {
  console.error('docs-offline: the Redoc bundle no longer names its CDN logo; check dist/docs/index.html for other hosts');
  process.exit(1);
}
// The server's icon, inline, so the browser does not ask for /favicon.ico (a 404 in the console).
html = html.replace('</head>', `${ICON}</head>`);
writeFileSync(page, html);
