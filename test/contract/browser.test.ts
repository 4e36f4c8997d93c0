import type { Browser } from 'playwright-core';
import { describeInBrowser, launchChromium } from '../helpers/browser.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../helpers/server.js';
import { stringify } from 'yaml';
import { catalogZip } from '../helpers/packages.js';
import { upload } from '../helpers/upload.js';
import { makeZip } from '../helpers/zip.js';

const run = describeInBrowser;

let server: RunningServer;
let browser: Browser;

run('pages in a real browser, with no internet', () => {
  beforeAll(async () => {
    server = await startServer();
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  /** Opens a page with every request to another host refused, as on an air-gapped network. */
  async function openOffline(path: string) {
    const page = await browser.newPage();
    const foreign: { url: string; type: string }[] = [];
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(server.url) || url.startsWith('data:') || url.startsWith('blob:')) return route.continue();
      foreign.push({ url, type: route.request().resourceType() });
      return route.abort('internetdisconnected');
    });
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    // A resource the page's own CSP refuses is a console error, not a request: count those too.
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(message.text());
    });
    await page.goto(`${server.url}${path}`, { waitUntil: 'networkidle' });
    return { page, foreign, errors };
  }

  it('renders the API docs from this host alone', async () => {
    const { page, foreign, errors } = await openOffline('/docs');
    await expect.poll(() => page.locator('h1').first().textContent()).toContain('Release Server');
    // The tags open in the sidebar and show their operations, rendered from the contract.
    for (const tag of ['Releases', 'Packages', 'Operations']) await page.getByText(tag, { exact: true }).first().click();
    for (const summary of ['Publish a package', 'Download a package', 'Delete a package', 'Browse the stored packages', 'Readiness probe']) {
      await expect.poll(() => page.getByText(summary).count()).toBeGreaterThan(0);
    }
    // The upload shows how to call it, not a JSON body no client sends.
    await page.goto(`${server.url}/docs#tag/Packages/operation/uploadPackage`, { waitUntil: 'networkidle' });
    await expect.poll(() => page.locator('body').innerText()).toContain('-F file=@spec-kit-template-claude-sh-v0.2.0.zip');
    // The introduction's example is a code block, not a paragraph that wraps mid-URL.
    await expect.poll(() => page.locator('pre, code').filter({ hasText: 'specify init my-project --template-url' }).count()).toBeGreaterThan(0);
    expect(foreign).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('shows the package list with working download links', async () => {
    await upload(server.url, 'spec-kit-template-claude-sh-v0.4.0.zip', 'zip bytes');
    const { page, foreign } = await openOffline('/packages');
    expect(await page.locator('h1').textContent()).toBe('Packages');
    const link = page.getByRole('link', { name: 'spec-kit-template-claude-sh-v0.4.0.zip' });
    const href = await link.getAttribute('href');
    expect(href).toBe(`${server.url}/assets/spec-kit-template-claude-sh-v0.4.0.zip`);
    const commands = await page.locator('pre').allTextContents();
    expect(commands[0]).toBe(`specify init my-project --template-url ${server.url}/latest --ai claude --script sh`);
    // and, in the release's own section, the pinned line
    expect(await page.locator('section#v0\\.4\\.0 pre').textContent()).toBe(`specify init my-project --template-url ${server.url}/releases/tags/v0.4.0 --ai claude --script sh`);
    expect(foreign).toEqual([]);
    await page.close();
  });

  it('shows a step, a bundle and the set-up page from this host alone, every link on them served here', async () => {
    const ok = async (res: Promise<Response>) => expect((await res).status).toBe(201);
    await ok(upload(server.url, 'e.zip', await catalogZip('extension', { id: 'offline-ext' })));
    const step = { step: { type_key: 'offline-step', name: 'Offline step', version: '1.0.0', description: 'A step', author: 'Acme' } };
    await ok(upload(server.url, 's.zip', await makeZip({ 'step.yml': stringify(step), '__init__.py': 'X = 1\n', 'lib/more.py': 'Y = 2\n' })));
    const bundle = {
      schema_version: '1.0',
      bundle: { id: 'offline-team', name: 'Offline team', version: '1.0.0', role: 'developer', description: 'A bundle', author: 'Acme', license: 'MIT' },
      requires: { speckit_version: '>=0.1.0' },
      provides: { extensions: [{ id: 'offline-ext', version: '1.0.0' }], steps: [{ id: 'offline-step' }] },
    };
    await ok(upload(server.url, 'bundle.yml', Buffer.from(stringify(bundle))));
    for (const path of ['/packages/step/offline-step', '/packages/bundle/offline-team', '/setup', '/packages?kind=step']) {
      const { page, foreign, errors } = await openOffline(path);
      expect(foreign, path).toEqual([]);
      expect(errors, path).toEqual([]);
      const links = await page.locator('main a[href]').evaluateAll((as) => as.map((a) => (a as HTMLAnchorElement).href));
      for (const link of new Set(links.map((l) => l.replace(/#.*$/, '')))) {
        if (!link.startsWith(server.url)) continue;
        expect((await fetch(link)).status, `${path} links to ${link}`).toBe(200);
      }
      await page.close();
    }
  });
});
