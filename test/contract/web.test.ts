import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { describeInBrowser, launchChromium } from '../helpers/browser.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogZip, presetManifest, workflowManifest } from '../helpers/packages.js';
import { tarGzFiles } from '../helpers/tar.js';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { upload } from '../helpers/upload.js';
import { makeZip } from '../helpers/zip.js';

const run = describeInBrowser;
/** Screenshots for a person to look at, one per page, width and colour scheme. */
const SHOTS = new URL('../../test-results/screenshots/', import.meta.url).pathname;
const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const WIDTHS = [360, 768, 1280];

let server: RunningServer;
let browser: Browser;

/** A token the tokens file marks `verified`: what it publishes carries the badge. */
const VERIFIED = 'verified-web-publisher-token-0123456789';

/** A tokens file naming a verified publisher (AUTH_TOKEN keeps working beside it). */
async function tokensFile(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'rs-web-tokens-'));
  const sha = (t: string) => createHash('sha256').update(t).digest('hex');
  const path = join(dir, 'tokens.yaml');
  await writeFile(path, `- name: vouched\n  scopes: [write]\n  sha256: ${sha(VERIFIED)}\n  verified: true\n`);
  return path;
}

const STEP_INIT = 'from specify_cli.workflows.base import StepBase\n\n\nclass Lint(StepBase):\n    type_key = "acme-lint"\n';

function stepZip(version: string): Promise<Buffer> {
  const step = { step: { type_key: 'acme-lint', name: 'Step acme-lint', version, description: 'Lints the plan before it runs', author: 'Acme' } };
  return makeZip({ 'step.yml': stringify(step), '__init__.py': STEP_INIT, 'helpers/util.py': 'X = 1\n' });
}

/** A bundle pinning what publishSome stores first, a component that ships with the CLI, and an unpinned step. */
const BUNDLE = stringify({
  schema_version: '1.0',
  bundle: { id: 'acme-team', name: 'Acme team', version: '1.0.0', role: 'developer', description: 'What Acme developers use', author: 'Acme', license: 'MIT' },
  requires: { speckit_version: '>=0.9.0' },
  provides: {
    extensions: [{ id: 'acme-hello', version: '1.0.0' }, { id: 'agent-context', version: '1.0.0' }],
    presets: [{ id: 'lean-spec', version: '1.0.0', priority: 10, strategy: 'replace' }],
    steps: [{ id: 'acme-lint' }],
    workflows: [{ id: 'plan-flow', version: '1.0.0' }],
  },
  tags: ['team'],
});

const INTEGRATION = stringify({
  schema_version: '1.0',
  integration: { id: 'my-agent', name: 'My Agent', version: '1.0.0', description: 'Integration for My Agent', author: 'Acme', repository: 'https://example.com/my-agent', license: 'MIT' },
  requires: { speckit_version: '>=0.6.0' },
  provides: { scripts: ['update-context.sh'] },
});

/**
 * One package of every kind and format: templates; an extension in two versions; a preset as a zip, then as a
 * tar.gz; a zipped workflow and a bare workflow.yml; a step (by a verified token) in two versions; a bare bundle.yml
 * pinning the first versions; a bare integration.yml; and snapshot 2026-12, frozen before the newer versions came.
 */
async function publishSome(url: string): Promise<void> {
  const ok = async (res: Promise<Response>) => {
    const done = await res;
    expect(done.status, await done.text()).toBe(201);
  };
  await ok(upload(url, 'spec-kit-template-claude-sh-v1.2.0.zip', await makeZip({ '.specify/templates/spec-template.md': '# Spec\n' })));
  await ok(upload(url, 'spec-kit-template-copilot-ps-v1.2.0.zip', await makeZip({ '.specify/templates/spec-template.md': '# Spec\n' })));
  await ok(upload(url, 'e.zip', await catalogZip('extension', { id: 'acme-hello', info: { homepage: 'https://example.com/acme' }, manifest: { tags: ['greeting', 'team'] } })));
  await ok(upload(url, 'p.zip', await catalogZip('preset', { id: 'lean-spec' })));
  await ok(upload(url, 'w.zip', await catalogZip('workflow', { id: 'plan-flow' })));
  await ok(upload(url, 'workflow.yml', Buffer.from(stringify(workflowManifest('review-flow', '2.0.0')))));
  await ok(upload(url, 's.zip', await stepZip('1.0.0'), { token: VERIFIED }));
  await ok(upload(url, 'bundle.yml', Buffer.from(BUNDLE)));
  await ok(upload(url, 'integration.yml', Buffer.from(INTEGRATION)));
  const snapshot = await fetch(`${url}/catalogs/snapshots`, { method: 'POST', body: JSON.stringify({ name: '2026-12' }), headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } });
  expect(snapshot.status, await snapshot.text()).toBe(201);
  await ok(upload(url, 'e2.zip', await catalogZip('extension', { id: 'acme-hello', version: '1.1.0', manifest: { tags: ['greeting', 'team'] } })));
  await ok(upload(url, 'p2.tar.gz', tarGzFiles({ 'preset.yml': stringify(presetManifest('lean-spec', '1.1.0')), 'templates/spec-template.md': '# Spec\n' })));
  await ok(upload(url, 's2.zip', await stepZip('1.1.0'), { token: VERIFIED }));
}

/** A page's text as a person reads it: entities undone. */
async function pageText(url: string): Promise<string> {
  const res = await fetch(url);
  expect(res.status, url).toBe(200);
  return (await res.text()).replaceAll('&#x3D;', '=').replaceAll('&#x2F;', '/').replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&quot;', '"');
}

run('the web UI in a real browser', () => {
  beforeAll(async () => {
    server = await startServer({ env: { MAX_PACKAGES: '0', TOKENS_FILE: await tokensFile() } });
    await publishSome(server.url);
    await mkdir(SHOTS, { recursive: true });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function open(context: BrowserContext, path: string): Promise<{ page: Page; errors: string[] }> {
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    await page.goto(`${server.url}${path}`, { waitUntil: 'networkidle' });
    return { page, errors };
  }

  const pages = [
    ['home', '/'],
    ['search', '/?q=acme'],
    ['extension', '/packages/extension/acme-hello'],
    ['workflow', '/packages/workflow/plan-flow'],
    ['packages', '/packages'],
    ['release', '/packages/template/v1.2.0'],
    ['presets', '/packages?kind=preset'],
    ['step', '/packages/step/acme-lint'],
    ['bundle', '/packages/bundle/acme-team'],
    ['integration', '/packages/integration/my-agent'],
    ['bundles', '/packages?kind=bundle'],
    ['setup', '/setup'],
    ['setup-snapshot', '/setup?snapshot=2026-12'],
  ] as const;

  it.each(pages)('%s fits 360, 768 and 1280 px, light and dark, with no console error', async (name, path) => {
    for (const colorScheme of ['light', 'dark'] as const) {
      for (const width of WIDTHS) {
        const context = await browser.newContext({ viewport: { width, height: 900 }, colorScheme });
        const { page, errors } = await open(context, path);
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        expect(overflow, `${path} at ${width} px, ${colorScheme}`).toBeLessThanOrEqual(0);
        await page.screenshot({ path: `${SHOTS}${name}-${width}-${colorScheme}.png`, fullPage: true });
        expect(errors).toEqual([]);
        await context.close();
      }
    }
  });

  it.each(pages)('%s has no serious or critical accessibility violation (axe-core), light and dark', async (_name, path) => {
    for (const colorScheme of ['light', 'dark'] as const) {
      // The audit's own script is injected into the page, which the page's CSP would refuse.
      const context = await browser.newContext({ bypassCSP: true, colorScheme });
      const { page } = await open(context, path);
      await page.addScriptTag({ path: AXE });
      const violations = await page.evaluate(async () => {
        const result = await (window as unknown as { axe: { run(): Promise<{ violations: { id: string; impact: string; nodes: unknown[] }[] }> } }).axe.run();
        return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id} (${v.impact}, ${v.nodes.length})`);
      });
      expect(violations, `${path}, ${colorScheme}`).toEqual([]);
      await context.close();
    }
  });

  it('searches as you type, by id, by tag and by description, and keeps the query in the address', async () => {
    const context = await browser.newContext();
    const { page } = await open(context, '/');
    const results = page.locator('#results li');
    expect(await results.count()).toBe(8);
    await page.locator('#q').fill('greeting');
    await expect.poll(() => results.count()).toBe(1);
    expect(await results.first().locator('a').textContent()).toBe('Ext acme-hello');
    await page.locator('#q').fill('plan-flow');
    await expect.poll(() => results.first().locator('a').textContent()).toBe('Flow plan-flow');
    await page.locator('#q').fill('copilot');
    await expect.poll(() => results.first().locator('a').textContent()).toBe('Templates v1.2.0');
    await page.locator('#q').fill('nothing-like-this');
    await expect.poll(() => results.count()).toBe(0);
    expect(await page.locator('#result-count').textContent()).toBe('0 results');
    expect(new URL(page.url()).searchParams.get('q')).toBe('nothing-like-this');
    await context.close();
  });

  it('works with JavaScript off: the search form answers from the server', async () => {
    const context = await browser.newContext({ javaScriptEnabled: false });
    const { page } = await open(context, '/');
    await page.locator('#q').fill('lean');
    await page.locator('#q').press('Enter');
    await page.waitForURL(/\?q=lean/);
    expect(await page.locator('#results li a').allTextContents()).toEqual(['Preset lean-spec']);
    await context.close();
  });

  it('is usable from the keyboard: skip link first, then the navigation and the search box', async () => {
    const context = await browser.newContext();
    const { page } = await open(context, '/');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Skip to content');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('q');
    await page.keyboard.type('greeting');
    await expect.poll(() => page.locator('#results li').count()).toBe(1);
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.activeElement?.textContent)).toBe('Ext acme-hello');
    await page.keyboard.press('Enter');
    await page.waitForURL(/\/packages\/extension\/acme-hello$/);
    await context.close();
  });

  it('shows every version of a package with its own install command, a short sha256 and a copy button that copies all of it', async () => {
    const context = await browser.newContext({ permissions: ['clipboard-read', 'clipboard-write'] });
    const { page } = await open(context, '/packages/extension/acme-hello');
    const versions = page.locator('ol.versions > li');
    expect(await versions.count()).toBe(2);
    expect(await versions.first().locator('h3').textContent()).toContain('1.1.0');
    const install = await versions.nth(1).locator('pre code').textContent();
    expect(install).toBe(`specify extension add acme-hello --from ${server.url}/assets/extension-acme-hello-1.0.0.zip`);
    const sha = versions.nth(1).locator('.sha code');
    expect((await sha.textContent())!.length).toBe(12);
    await versions.nth(1).locator('.sha button').click();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(await sha.getAttribute('title'));
    expect(await page.locator('a[href="https://example.com/acme"]').count()).toBe(0); // 1.1.0 is served, without a homepage
    expect(await page.locator('dl.fields').textContent()).toContain('greeting · team');
    // What it provides, by name; the catalog itself carries only the fields the CLI reads.
    expect(await page.locator('ul.contents').textContent()).toContain('command speckit.acme-hello.greet');
    const catalog = await (await fetch(`${server.url}/catalogs/extensions.json`)).json();
    expect(catalog.extensions['acme-hello'].contents).toBeUndefined();
    await context.close();
  });

  it('lists packages with counts that add up, short digests, one set-up per kind and links to each package page', async () => {
    const context = await browser.newContext({ viewport: { width: 400, height: 900 } });
    const { page } = await open(context, '/packages');
    expect(await page.locator('p.lead').first().textContent()).toBe('2 templates in 1 release · 1 extension · 1 preset · 2 workflows · 1 step · 1 bundle · 1 integration');
    expect(await page.locator('table.files code').first().textContent()).toHaveLength(12);
    expect(await page.locator('section#extensions pre').count()).toBe(2);
    await page.getByRole('link', { name: 'Ext acme-hello' }).click();
    await page.waitForURL(/\/packages\/extension\/acme-hello$/);
    await context.close();
    const presetsOnly = await (await fetch(`${server.url}/packages?kind=preset`)).text();
    expect(presetsOnly).not.toContain('No templates yet');
    expect(presetsOnly).not.toContain('id="templates"');
  });

  it('has a page per release, with its files and the specify init line pinned to it', async () => {
    const res = await fetch(`${server.url}/packages/template/v1.2.0`);
    expect(res.status).toBe(200);
    const html = (await res.text()).replaceAll('&#x3D;', '=').replaceAll('&#x2F;', '/');
    expect(html).toContain(`specify init my-project --template-url ${server.url}/releases/tags/v1.2.0 --ai claude --script sh`);
    expect(html).toContain('spec-kit-template-copilot-ps-v1.2.0.zip');
    expect(html).toContain('what <a href');
    expect((await fetch(`${server.url}/packages/template/v9.9.9`)).status).toBe(404);
    const index = (await (await fetch(`${server.url}/search.json`)).json()) as { items: { kind: string; url: string }[] };
    expect(index.items.find((i) => i.kind === 'template')!.url).toBe(`${server.url}/packages/template/v1.2.0`);
  });

  it('says on a step page that a step is executable Python, and links each file of each version to its immutable URL', async () => {
    const context = await browser.newContext();
    const { page } = await open(context, '/packages/step/acme-lint');
    expect(await page.locator('h1').textContent()).toBe('Step acme-lint workflow step verified');
    const notice = await page.locator('.notice').textContent();
    expect(notice).toContain('A workflow step is executable Python.');
    expect(notice).toContain('specify workflow run');
    expect(await page.locator('#cmd-install').textContent()).toBe(`SPECKIT_STEP_CATALOG_URL=${server.url}/catalogs/steps.json specify workflow step add acme-lint`);
    // The served version's files are open; each link is the URL the catalog gives the CLI, and serves the file.
    const served = page.locator('ol.versions > li').first();
    expect(await served.locator('details.parts').getAttribute('open')).toBe('');
    expect(await served.locator('table.parts td[data-label="File"] a').allTextContents()).toEqual(['step.yml', '__init__.py', 'helpers/util.py']);
    const catalog = await (await fetch(`${server.url}/catalogs/steps.json`)).json();
    const entry = catalog.steps['acme-lint'];
    const hrefs = await served.locator('table.parts a').evaluateAll((links) => links.map((a) => (a as HTMLAnchorElement).href));
    expect(hrefs).toEqual([entry.step_yml_url, entry.init_url, entry.extra_files['helpers/util.py']]);
    expect(await (await fetch(hrefs[1]!)).text()).toBe(STEP_INIT);
    // An older version: its own files, and the snapshot that still serves it.
    const older = page.locator('li#version-1\\.0\\.0');
    expect(await older.locator('details.parts').getAttribute('open')).toBeNull();
    expect(await older.locator('.held').textContent()).toContain('in snapshot 2026-12');
    expect(await older.locator('pre code').textContent()).toBe(`SPECKIT_STEP_CATALOG_URL=${server.url}/catalogs/snapshots/2026-12/steps.json specify workflow step add acme-lint`);
    await older.locator('summary').click();
    expect(await older.locator('table.parts a').count()).toBe(3);
    await context.close();
  });

  it('lists a bundle\'s components with their pins, links each to the pinned version here, and says which ship with the CLI', async () => {
    const context = await browser.newContext();
    const { page } = await open(context, '/packages/bundle/acme-team');
    expect(await page.locator('dl.fields').textContent()).toContain('Roledeveloper');
    expect(await page.locator('#cmd-install').textContent()).toBe('specify bundle install acme-team');
    expect(await page.locator('main a[href$="/setup"]').count()).toBeGreaterThan(0);
    const rows = await page.locator('table.parts tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
    expect(rows).toEqual([
      ['extension', 'acme-hello', '1.0.0', 'stored here'],
      ['extension', 'agent-context', '1.0.0', 'ships with the spec-kit CLI'],
      ['preset', 'lean-spec', '1.0.0', 'stored here'],
      ['step', 'acme-lint', 'any (steps may be unpinned)', 'stored here'],
      ['workflow', 'plan-flow', '1.0.0', 'stored here'],
    ]);
    expect(await page.locator('table.parts td[data-label="Id"] code').allTextContents()).toEqual(['agent-context']);
    // The format of its download: a bare bundle.yml.
    expect(await page.locator('ol.versions > li .facts span').first().textContent()).toBe('YAML');
    await page.getByRole('link', { name: 'acme-hello' }).click();
    await page.waitForURL(/\/packages\/extension\/acme-hello#version-1\.0\.0$/);
    expect(await page.locator('li#version-1\\.0\\.0 h3').textContent()).toBe('1.0.0');
    await context.close();
  });

  it('shows on every version what holds it, which is why DELETE answers 409', async () => {
    const html = await pageText(`${server.url}/packages/extension/acme-hello`);
    const older = html.slice(html.indexOf('id="version-1.0.0"'));
    expect(older).toContain(`<a href="${server.url}/packages/bundle/acme-team#version-1.0.0">pinned by bundle acme-team 1.0.0</a>`);
    expect(older).toContain(`<a href="${server.url}/setup?snapshot=2026-12">in snapshot 2026-12</a>`);
    expect(older).toContain('refused (409)');
    const newer = html.slice(html.indexOf('id="version-1.1.0"'), html.indexOf('id="version-1.0.0"'));
    expect(newer).not.toContain('class="held"');
    const refused = await fetch(`${server.url}/assets/extension-acme-hello-1.0.0.zip`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(refused.status).toBe(409);
    expect((await refused.json()).detail).toContain('acme-team');
  });

  it('names the format of each download and gives --from lines where the CLI takes them (extensions, presets, workflows)', async () => {
    const preset = await pageText(`${server.url}/packages/preset/lean-spec`);
    expect(preset).toContain('<span>tar.gz</span>');
    expect(preset).toContain(`specify preset add lean-spec --from ${server.url}/assets/preset-lean-spec-1.1.0.tar.gz`);
    expect(preset).toContain(`specify preset add lean-spec --from ${server.url}/assets/preset-lean-spec-1.0.0.zip`);
    const workflow = await pageText(`${server.url}/packages/workflow/review-flow`);
    expect(workflow).toContain('<span>YAML</span>');
    expect(workflow).toContain(`specify workflow add review-flow --from ${server.url}/assets/workflow-review-flow-2.0.0.yml`);
    const step = await pageText(`${server.url}/packages/step/acme-lint`);
    expect(step).not.toContain('--from');
  });

  it('shows an integration for search and info only, with no download', async () => {
    const html = await pageText(`${server.url}/packages/integration/my-agent`);
    expect(html).toContain(`SPECKIT_INTEGRATION_CATALOG_URL=${server.url}/catalogs/integrations.json specify integration info my-agent`);
    expect(html).toContain('search</code> and <code>specify integration info</code> only');
    expect(html).not.toMatch(/<a [^>]*download/);
    expect(html).not.toContain('/assets/');
    expect(html).not.toContain('specify integration add');
  });

  it('lists bundles with no variable to set, pointing at /setup, and each kind with its own catalog file', async () => {
    const bundles = await pageText(`${server.url}/packages?kind=bundle`);
    expect(bundles).toContain('<p class="lead">1 bundle</p>');
    expect(bundles).toContain('id="bundles"');
    expect(bundles).not.toContain('id="extensions"');
    expect(bundles).not.toMatch(/SPECKIT_[A-Z_]*=/);
    expect(bundles).toContain(`<a href="${server.url}/setup">The set-up page</a>`);
    expect(bundles).toContain('<code>specify bundle install acme-team</code>');
    expect(bundles).toContain(`  - id: release-server\n    url: ${server.url}/catalogs/bundles.json\n    priority: 1\n    install_policy: install-allowed`);
    const all = await pageText(`${server.url}/packages`);
    for (const [section, file, line] of [
      ['extensions', 'extension-catalogs.yml', 'SPECKIT_CATALOG_URL'],
      ['presets', 'preset-catalogs.yml', 'SPECKIT_PRESET_CATALOG_URL'],
      ['workflows', 'workflow-catalogs.yml', 'SPECKIT_WORKFLOW_CATALOG_URL'],
      ['steps', 'step-catalogs.yml', 'SPECKIT_STEP_CATALOG_URL'],
      ['integrations', 'integration-catalogs.yml', 'SPECKIT_INTEGRATION_CATALOG_URL'],
      ['bundles', 'bundle-catalogs.yml', null],
    ] as const) {
      const start = all.indexOf(`<section id="${section}">`);
      const text = all.slice(start, all.indexOf('</section>', start));
      expect(text, section).toContain(`<code>~/.specify/${file}</code>`);
      expect(text, section).toContain(`href="${server.url}/setup?format=${file}"`);
      if (line) expect(text, section).toContain(`${line}=${server.url}/catalogs/${section}.json specify `);
    }
    expect(all).toContain('specify workflow step add <id>');
    expect(all).toContain('<code>specify integration info my-agent</code>');
    for (const kind of ['step', 'bundle', 'integration']) expect(all).toContain(`href="${server.url}/packages?kind=${kind}"`);
  });

  it('lists the snapshots on the home page with their catalogs and set-up links, and every page links to /setup', async () => {
    const context = await browser.newContext();
    const { page } = await open(context, '/');
    expect(await page.locator('nav[aria-label="Main"] a', { hasText: 'Set up' }).getAttribute('href')).toBe(`${server.url}/setup`);
    const snapshot = page.locator('#snapshot-2026-12');
    expect(await snapshot.locator('a', { hasText: 'Set up the CLI with snapshot 2026-12' }).getAttribute('href')).toBe(`${server.url}/setup?snapshot=2026-12`);
    const catalogs = await snapshot.locator('.item-text a').evaluateAll((links) => links.map((a) => (a as HTMLAnchorElement).href));
    expect(catalogs).toEqual(['extensions', 'presets', 'workflows', 'steps', 'bundles', 'integrations'].map((s) => `${server.url}/catalogs/snapshots/2026-12/${s}.json`));
    for (const url of catalogs) expect((await fetch(url)).status, url).toBe(200);
    const lines = await page.locator('#cmd-catalogs').textContent();
    expect(lines).toContain(`SPECKIT_STEP_CATALOG_URL=${server.url}/catalogs/steps.json specify workflow step add <id>`);
    expect(lines).toContain(`SPECKIT_INTEGRATION_CATALOG_URL=${server.url}/catalogs/integrations.json specify integration info <id>`);
    expect(lines).toContain('specify bundle install <id>');
    expect(lines).not.toContain('specify bundle add');
    // Every kind is searchable, as you type.
    await page.locator('#q').fill('lints');
    await expect.poll(() => page.locator('#results li').count()).toBe(1);
    expect(await page.locator('#results li .kind').textContent()).toBe('workflow step');
    await page.locator('#snapshot-2026-12 a', { hasText: 'Set up the CLI' }).click();
    await page.waitForURL(/\/setup\?snapshot=2026-12$/);
    expect(await page.locator('h1').textContent()).toBe('Set up the specify CLI');
    expect(await page.locator('nav.kinds a[aria-current="page"]').textContent()).toContain('Snapshot 2026-12');
    await context.close();
  });
});

describe('the web UI on a private server', () => {
  it('shows nothing to an anonymous visitor, and everything behind the Basic prompt', async () => {
    const priv = await startServer({ env: { READ_ACCESS: 'token', MAX_PACKAGES: '0', TOKENS_FILE: await tokensFile() } });
    try {
      await publishSome(priv.url);
      for (const path of ['/', '/?q=acme', '/search.json', '/packages/extension/acme-hello']) {
        const anonymous = await fetch(`${priv.url}${path}`, { headers: { accept: 'text/html' } });
        expect(anonymous.status, path).toBe(401);
        // Nothing of what is stored (names, descriptions, versions); the problem names only the path asked for.
        const body = await anonymous.text();
        for (const secret of ['Ext acme-hello', 'The acme-hello extension', 'lean-spec', 'v1.2.0']) expect(body).not.toContain(secret);
        const basic = await fetch(`${priv.url}${path}`, { headers: { authorization: `Basic ${Buffer.from(`me:${TOKEN}`).toString('base64')}` } });
        expect(basic.status, path).toBe(200);
      }
      expect((await fetch(`${priv.url}/`, { headers: { accept: 'text/html' } })).headers.get('www-authenticate')).toBe('Basic realm="release-server"');
      // What every page loads is public and says nothing about what is stored.
      for (const file of ['app.js', 'app.css']) {
        const res = await fetch(`${priv.url}/static/${file}`);
        expect(res.status).toBe(200);
        const text = await res.text();
        for (const secret of ['acme', 'lean-spec', 'v1.2.0']) expect(text).not.toContain(secret);
      }
    } finally {
      await priv.stop();
    }
  });
});
