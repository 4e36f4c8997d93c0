import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { describeInBrowser, launchChromium } from '../helpers/browser.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogZip } from '../helpers/packages.js';
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

async function publishSome(url: string): Promise<void> {
  await upload(url, 'spec-kit-template-claude-sh-v1.2.0.zip', await makeZip({ '.specify/templates/spec-template.md': '# Spec\n' }));
  await upload(url, 'spec-kit-template-copilot-ps-v1.2.0.zip', await makeZip({ '.specify/templates/spec-template.md': '# Spec\n' }));
  await upload(url, 'e.zip', await catalogZip('extension', { id: 'acme-hello', info: { homepage: 'https://example.com/acme' }, manifest: { tags: ['greeting', 'team'] } }));
  await upload(url, 'e2.zip', await catalogZip('extension', { id: 'acme-hello', version: '1.1.0', manifest: { tags: ['greeting', 'team'] } }));
  await upload(url, 'p.zip', await catalogZip('preset', { id: 'lean-spec' }));
  await upload(url, 'w.zip', await catalogZip('workflow', { id: 'plan-flow' }));
}

run('the web UI in a real browser', () => {
  beforeAll(async () => {
    server = await startServer({ env: { MAX_PACKAGES: '0' } });
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
    expect(await results.count()).toBe(4);
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
    await page.keyboard.type('acme');
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
    expect(await page.locator('p.lead').first().textContent()).toBe('2 templates in 1 release · 1 extension · 1 preset · 1 workflow');
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
});

describe('the web UI on a private server', () => {
  it('shows nothing to an anonymous visitor, and everything behind the Basic prompt', async () => {
    const priv = await startServer({ env: { READ_ACCESS: 'token', MAX_PACKAGES: '0' } });
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
