import { describe, expect, it } from 'vitest';
import { clientSetup } from '../../src/setup/client-setup.js';
import { loadWebPages } from '../../src/web/pages.js';

const pages = loadWebPages();
const base = 'https://specs.acme.example';
const snapshots = [
  { name: '2026-12', created_at: '2026-12-01T10:00:00.000Z' },
  { name: 'stable', created_at: '2026-11-02T10:00:00.000Z' },
];

/** The text a browser shows for the HTML (Mustache escapes `/`, `=`, quotes and `&`). */
function unescape(html: string): string {
  return html
    .replace(/&#x([0-9a-f]+);/gi, (_, hex: string) => String.fromCodePoint(Number.parseInt(hex, 16)))
    .replace(/&#(\d+);/g, (_, dec: string) => String.fromCodePoint(Number(dec)))
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&quot;', '"')
    .replaceAll('&amp;', '&');
}

describe('GET /setup page', () => {
  it('shows each file in a <pre> with a copy button and a download link, and no auth for a public server', () => {
    const html = unescape(pages.setup({ snapshot: null, snapshots, privateServer: false }, base));
    const generated = clientSetup({ base, snapshot: null, privateServer: false, host: 'specs.acme.example' });
    for (const file of generated.files) {
      expect(html, file.format).toContain(`<code>${file.text}</code>`);
      if (file.format !== 'env') expect(html).toContain(`href="${base}/setup?format=${file.format}" download="${file.fileName}"`);
      if (file.format !== 'env') expect(html).toContain(`curl -fsS -o ~/.specify/${file.fileName} '${base}/setup?format=${file.format}'`);
    }
    expect(html).toContain(`href="${base}/setup?format=env"`);
    expect(html).not.toContain('auth.json');
    expect(html).not.toContain('Authorization');
    expect(html.match(/<pre /g)).toHaveLength(generated.files.length + 1); // every file and the fetch commands
    expect(html.match(/data-copy=/g)).toHaveLength(generated.files.length + 1);
  });

  it('lists snapshots to choose from and marks the current one; every link keeps the snapshot', () => {
    const html = unescape(pages.setup({ snapshot: 'stable', snapshots, privateServer: false }, base));
    expect(html).toContain(`<a href="${base}/setup?snapshot=stable" aria-current="page">Snapshot stable`);
    expect(html).toContain(`<a href="${base}/setup?snapshot=2026-12">Snapshot 2026-12 <span class="version">2026-12-01</span>`);
    expect(html).toContain(`<a href="${base}/setup">Live catalogs</a>`);
    expect(html).toContain(`${base}/setup?format=step-catalogs.yml&snapshot=stable`);
    expect(html).toContain(`${base}/catalogs/snapshots/stable/extensions.json`);
    expect(html.slice(html.indexOf('<main'), html.indexOf('</main>'))).not.toContain(`${base}/catalogs/extensions.json`); // the layout's footer links the live ones
  });

  it('shows auth.json, the Basic alternative and authenticated curl lines for a private server', () => {
    const html = unescape(pages.setup({ snapshot: null, snapshots: [], privateServer: true, host: 'specs.acme.example:8443' }, base));
    expect(html).toContain('~/.specify/auth.json');
    expect(html).toContain('"provider": "azure-devops",\n      "auth": "bearer"');
    expect(html).not.toContain('"provider": "github"');
    expect(html).toContain('"auth": "basic-pat"');
    expect(html).toContain(`curl -fsS -H "Authorization: Bearer $RELEASE_SERVER_TOKEN" -o ~/.specify/auth.json`);
    expect(html).toContain('chmod 600 ~/.specify/auth.json');
    expect(html).toContain('<code>specs.acme.example</code>');
    expect(html).toContain('No snapshots yet');
  });

  it('has no inline script or style (the CSP forbids them)', () => {
    const html = unescape(pages.setup({ snapshot: '2026-12', snapshots, privateServer: true }, base));
    expect(html.match(/<script\b[^>]*>/g)).toEqual([`<script src="${base}/static/app.js" defer>`]);
    expect(html).not.toMatch(/<style|\sstyle=|\son[a-z]+=/i);
  });
});
