import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, TOKEN, type RunningServer } from '../helpers/server.js';
import { specifyInit } from '../helpers/specify-client.js';
import { templateZip } from '../helpers/packages.js';
import { upload } from '../helpers/upload.js';
import { makeZip, sha256 } from '../helpers/zip.js';

interface Asset {
  id: number;
  name: string;
  url: string;
  browser_download_url: string;
}
interface Release {
  id: number;
  tag_name: string;
  prerelease: boolean;
  url: string;
  assets: Asset[];
}

const json = async <T>(url: string, headers: Record<string, string> = {}): Promise<T> => {
  const res = await fetch(url, { headers });
  expect(res.status, url).toBe(200);
  return (await res.json()) as T;
};

let server: RunningServer;
let v1: Buffer;
let v2: Buffer;
beforeAll(async () => {
  server = await startServer({ env: { MAX_PACKAGES: '0' } });
  v1 = await makeZip({ 'README.md': 'v0.1.0' });
  v2 = await makeZip({ 'README.md': 'v0.2.0' });
  // v0.2.0 first, then v0.1.0: upload time must not decide.
  for (const [name, bytes] of [
    ['spec-kit-template-claude-sh-v0.2.0.zip', v2],
    ['spec-kit-template-copilot-ps-v0.2.0.zip', v2],
    ['spec-kit-template-claude-sh-v0.1.0.zip', v1],
    ['spec-kit-template-copilot-ps-v0.1.0.zip', v1],
  ] as const) {
    expect((await upload(server.url, name, bytes)).status).toBe(201);
  }
});
afterAll(async () => {
  await server.stop();
});

describe('pinning a version', () => {
  it('/releases/tags/v0.1.0 has only the v0.1.0 assets, and the CLI picks v0.1.0 from it', async () => {
    const release = await json<Release>(`${server.url}/releases/tags/v0.1.0`);
    expect(release.tag_name).toBe('v0.1.0');
    expect(release.assets.map((a) => a.name).sort()).toEqual(['spec-kit-template-claude-sh-v0.1.0.zip', 'spec-kit-template-copilot-ps-v0.1.0.zip']);
    const pinned = await specifyInit(`${server.url}/releases/tags/v0.1.0`, 'claude', 'sh');
    expect(pinned).toMatchObject({ tag: 'v0.1.0', asset: 'spec-kit-template-claude-sh-v0.1.0.zip' });
    expect(pinned.zip.equals(v1)).toBe(true);
    // while the unpinned URL gives the newest
    expect((await specifyInit(`${server.url}/latest`, 'claude', 'sh')).asset).toBe('spec-kit-template-claude-sh-v0.2.0.zip');
  });

  it('takes the tag with or without its v, and answers an absent tag with 404 problem+json', async () => {
    expect((await json<Release>(`${server.url}/releases/tags/0.1.0`)).tag_name).toBe('v0.1.0');
    const missing = await fetch(`${server.url}/releases/tags/v9.9.9`);
    expect(missing.status).toBe(404);
    expect(missing.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect((await fetch(`${server.url}/releases/tags/not-a-version`)).status).toBe(404);
  });
});

describe('ordering by version, not upload time', () => {
  it('lists releases highest version first, each with only its own assets', async () => {
    const releases = await json<Release[]>(`${server.url}/releases`);
    expect(releases.map((r) => r.tag_name).slice(0, 2)).toEqual(['v0.2.0', 'v0.1.0']);
    for (const release of releases) for (const asset of release.assets) expect(asset.name).toContain(release.tag_name);
  });

  it('a hotfix of an older version, uploaded last, does not become what the CLI picks', async () => {
    await upload(server.url, 'spec-kit-template-claude-sh-v0.1.1.zip', await makeZip({ 'README.md': 'hotfix' }));
    const latest = await json<Release>(`${server.url}/latest`);
    expect(latest.tag_name).toBe('v0.2.0');
    expect(latest.assets[0]!.name).toMatch(/v0\.2\.0\.zip$/);
    expect((await specifyInit(`${server.url}/latest`, 'claude', 'sh')).asset).toBe('spec-kit-template-claude-sh-v0.2.0.zip');
    expect((await json<Release[]>(`${server.url}/releases`)).map((r) => r.tag_name).slice(0, 3)).toEqual(['v0.2.0', 'v0.1.1', 'v0.1.0']);
  });

  it('takes the tag query parameter over the name, and refuses one that is not semver', async () => {
    const res = await fetch(`${server.url}/upload?tag=v0.3.0`, { method: 'POST', body: form('spec-kit-template-gemini-sh.zip', await templateZip('nameless')), headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(201);
    expect((await res.json()).tag).toBe('v0.3.0');
    expect((await json<Release>(`${server.url}/releases/tags/v0.3.0`)).assets.map((a) => a.name)).toEqual(['spec-kit-template-gemini-sh.zip']);
    const bad = await fetch(`${server.url}/upload?tag=banana`, { method: 'POST', body: form('x.zip', await templateZip('x')), headers: { authorization: `Bearer ${TOKEN}` } });
    expect(bad.status).toBe(400);
    const leadingZero = await fetch(`${server.url}/upload?tag=v01.0.0`, { method: 'POST', body: form('y.zip', await templateZip('y')), headers: { authorization: `Bearer ${TOKEN}` } });
    expect(leadingZero.status).toBe(400);
    expect((await fetch(`${server.url}/assets/y.zip`)).status).toBe(404);
  });

  it('shows each package’s tag in /packages, untagged ones with null', async () => {
    await upload(server.url, 'notes.txt', 'no version here');
    const packages = await json<{ name: string; tag: string | null }[]>(`${server.url}/packages?format=json`);
    expect(packages.find((p) => p.name === 'spec-kit-template-claude-sh-v0.1.0.zip')!.tag).toBe('v0.1.0');
    expect(packages.find((p) => p.name === 'notes.txt')!.tag).toBeNull();
    const latest = await json<Release>(`${server.url}/latest`);
    expect(latest.assets.at(-1)!.name).toBe('notes.txt');
  });
});

describe('pre-releases', () => {
  it('are marked, ordered below their release, and skipped by latest while a release exists', async () => {
    const alone = await startServer();
    try {
      await upload(alone.url, 'spec-kit-template-claude-sh-v1.0.0-rc.1.zip', 'rc1');
      let latest = await json<Release>(`${alone.url}/releases/latest`);
      expect(latest).toMatchObject({ tag_name: 'v1.0.0-rc.1', prerelease: true });
      await upload(alone.url, 'spec-kit-template-claude-sh-v0.9.0.zip', 'stable');
      latest = await json<Release>(`${alone.url}/releases/latest`);
      expect(latest).toMatchObject({ tag_name: 'v0.9.0', prerelease: false });
      expect((await specifyInit(`${alone.url}/latest`, 'claude', 'sh')).asset).toBe('spec-kit-template-claude-sh-v0.9.0.zip');
      expect((await json<Release>(`${alone.url}/releases/tags/v1.0.0-rc.1`)).prerelease).toBe(true);
      expect((await json<Release[]>(`${alone.url}/releases`)).map((r) => r.tag_name)).toEqual(['v1.0.0-rc.1', 'v0.9.0']);
      await upload(alone.url, 'spec-kit-template-claude-sh-v1.0.0.zip', 'final');
      expect((await json<Release[]>(`${alone.url}/releases`)).map((r) => r.tag_name)).toEqual(['v1.0.0', 'v1.0.0-rc.1', 'v0.9.0']);
      expect((await json<Release>(`${alone.url}/latest`)).tag_name).toBe('v1.0.0');
    } finally {
      await alone.stop();
    }
  });
});

describe('pagination', () => {
  it('pages with per_page and page, and a GitHub-style Link header', async () => {
    const paged = await startServer();
    try {
      for (const v of ['1.0.0', '1.1.0', '1.2.0', '2.0.0', '2.1.0']) await upload(paged.url, `pkg-v${v}.zip`, v);
      const first = await fetch(`${paged.url}/releases?per_page=2`);
      expect(((await first.json()) as Release[]).map((r) => r.tag_name)).toEqual(['v2.1.0', 'v2.0.0']);
      const links = parseLinks(first.headers.get('link')!);
      expect(links).toEqual({ next: `${paged.url}/releases?per_page=2&page=2`, last: `${paged.url}/releases?per_page=2&page=3` });
      const lastPage = await fetch(links.last!);
      expect(((await lastPage.json()) as Release[]).map((r) => r.tag_name)).toEqual(['v1.0.0']);
      expect(parseLinks(lastPage.headers.get('link')!)).toEqual({ first: `${paged.url}/releases?per_page=2&page=1`, prev: `${paged.url}/releases?per_page=2&page=2` });
      expect(await json<Release[]>(`${paged.url}/releases?per_page=2&page=9`)).toEqual([]);
      for (const bad of ['per_page=0', 'page=0', 'page=x']) expect((await fetch(`${paged.url}/releases?${bad}`)).status).toBe(400);
      // As on GitHub, a per_page beyond 100 counts as 100.
      expect((await fetch(`${paged.url}/releases?per_page=101`)).status).toBe(200);
      // the GitHub path pages the same way, with links on its own path
      const repo = await fetch(`${paged.url}/repos/acme/templates/releases?per_page=2&page=2`);
      expect(((await repo.json()) as Release[]).map((r) => r.tag_name)).toEqual(['v1.2.0', 'v1.1.0']);
      expect(parseLinks(repo.headers.get('link')!).next).toBe(`${paged.url}/repos/acme/templates/releases?per_page=2&page=3`);
    } finally {
      await paged.stop();
    }
  });
});

describe('GitHub REST API paths', () => {
  it('answer like their short forms, whatever owner and repo', async () => {
    expect(await json(`${server.url}/repos/any/thing/releases`)).toEqual(await json(`${server.url}/releases`));
    expect(await json(`${server.url}/repos/any/thing/releases/latest`)).toEqual(await json(`${server.url}/latest`));
    expect(await json(`${server.url}/releases/latest`)).toEqual(await json(`${server.url}/latest`));
    expect(await json(`${server.url}/repos/o/r/releases/tags/v0.1.0`)).toEqual(await json(`${server.url}/releases/tags/v0.1.0`));
  });
});

describe('assets by id', () => {
  it('answer JSON, or the identical bytes with Accept: application/octet-stream', async () => {
    const release = await json<Release>(`${server.url}/releases/tags/v0.1.0`);
    const asset = release.assets.find((a) => a.name === 'spec-kit-template-claude-sh-v0.1.0.zip')!;
    expect(asset.url).toBe(`${server.url}/releases/assets/${asset.id}`);
    expect(await json(asset.url)).toEqual(asset);
    expect(await json(`${server.url}/repos/o/r/releases/assets/${asset.id}`)).toEqual(asset);
    const redirect = await fetch(asset.url, { headers: { accept: 'application/octet-stream' }, redirect: 'manual' });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get('location')).toBe(asset.browser_download_url);
    const bytes = Buffer.from(await (await fetch(asset.url, { headers: { accept: 'application/octet-stream' } })).arrayBuffer());
    expect(sha256(bytes)).toBe(sha256(v1));
    expect((await fetch(`${server.url}/releases/assets/999999`)).status).toBe(404);
    expect((await fetch(`${server.url}/releases/assets/abc`)).status).toBe(400);
  });

  it('keep their ids across a restart, and never reuse one', async () => {
    const restarted = await startServer();
    await upload(restarted.url, 'spec-kit-template-a-sh-v1.0.0.zip', 'a');
    await upload(restarted.url, 'spec-kit-template-b-sh-v1.0.0.zip', 'b');
    const before = await json<Release>(`${restarted.url}/releases/tags/v1.0.0`);
    await restarted.stop();
    const again = await startServer({ storagePath: restarted.storagePath });
    try {
      const after = await json<Release>(`${again.url}/releases/tags/v1.0.0`);
      const ids = (r: Release) => Object.fromEntries(r.assets.map((a) => [a.name, a.id]));
      expect(ids(after)).toEqual(ids(before));
      expect(after.id).toBe(before.id);
      const highest = Math.max(...Object.values(ids(after)));
      await fetch(`${again.url}/assets/spec-kit-template-b-sh-v1.0.0.zip`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
      const res = await upload(again.url, 'spec-kit-template-c-sh-v1.0.0.zip', 'c');
      expect(res.status).toBe(201);
      const c = (await json<Release>(`${again.url}/releases/tags/v1.0.0`)).assets.find((a) => a.name === 'spec-kit-template-c-sh-v1.0.0.zip')!;
      expect(c.id).toBeGreaterThan(highest);
    } finally {
      await again.stop();
    }
  });
});

describe('max_releases', () => {
  it('deletes whole releases beyond the newest N, never the one just uploaded to; untagged packages stay', async () => {
    const limited = await startServer({ env: { MAX_RELEASES: '2', MAX_PACKAGES: '0' } });
    try {
      await upload(limited.url, 'untagged.zip', 'u');
      for (const v of ['0.1.0', '0.2.0']) {
        await upload(limited.url, `spec-kit-template-claude-sh-v${v}.zip`, v);
        await upload(limited.url, `spec-kit-template-copilot-ps-v${v}.zip`, v);
      }
      await upload(limited.url, 'spec-kit-template-claude-sh-v0.3.0.zip', '0.3.0');
      const tags = async () => (await json<Release[]>(`${limited.url}/releases`)).map((r) => r.tag_name);
      expect(await tags()).toEqual(['v0.3.0', 'v0.2.0']);
      expect((await fetch(`${limited.url}/assets/spec-kit-template-copilot-ps-v0.1.0.zip`)).status).toBe(404);
      expect(limited.logs().find((l) => l.message === 'release v0.1.0 deleted by retention (max_releases 2)')).toMatchObject({ level: 'WARN', tag: 'v0.1.0' });
      // an old hotfix is kept beside the newest two
      expect((await upload(limited.url, 'spec-kit-template-claude-sh-v0.1.1.zip', 'hotfix')).status).toBe(201);
      expect(await tags()).toEqual(['v0.3.0', 'v0.2.0', 'v0.1.1']);
      await upload(limited.url, 'spec-kit-template-claude-sh-v0.4.0.zip', '0.4.0');
      expect(await tags()).toEqual(['v0.4.0', 'v0.3.0']);
      expect((await fetch(`${limited.url}/assets/untagged.zip`)).status).toBe(200);
    } finally {
      await limited.stop();
    }
  });
});

describe('retention never splits the release just uploaded', () => {
  const AGENTS = ['claude', 'gemini', 'copilot', 'cursor-agent', 'qwen', 'opencode', 'codex', 'windsurf', 'kilocode', 'auggie', 'roo', 'q'];
  const release = (v: string) => AGENTS.flatMap((agent) => ['sh', 'ps'].map((script) => `spec-kit-template-${agent}-${script}-v${v}.zip`));

  it('keeps all 24 templates of a release with the defaults, and the newest five releases', async () => {
    const server = await startServer();
    try {
      for (const v of ['0.1.0', '0.2.0', '0.3.0', '0.4.0', '0.5.0', '0.6.0']) {
        for (const name of release(v)) expect((await upload(server.url, name, name)).status).toBe(201);
      }
      const latest = await json<Release>(`${server.url}/latest`);
      expect(latest.assets.filter((a) => a.name.endsWith('-v0.6.0.zip'))).toHaveLength(24);
      expect(latest.assets.some((a) => a.name === 'spec-kit-template-claude-sh-v0.6.0.zip')).toBe(true);
      expect((await json<Release[]>(`${server.url}/releases`)).map((r) => r.tag_name)).toEqual(['v0.6.0', 'v0.5.0', 'v0.4.0', 'v0.3.0', 'v0.2.0']);
    } finally {
      await server.stop();
    }
  });

  it('with max_packages below a release, deletes older releases first and never one of the new release; the answer says what went', async () => {
    const server = await startServer({ env: { MAX_PACKAGES: '10', MAX_RELEASES: '0' } });
    try {
      for (const name of release('1.0.0').slice(0, 6)) await upload(server.url, name, name);
      let last: { removed_by_retention: string[] } | null = null;
      const removed: string[] = [];
      for (const name of release('2.0.0')) {
        const res = await upload(server.url, name, name);
        expect(res.status).toBe(201);
        last = (await res.json()) as { removed_by_retention: string[] };
        removed.push(...last.removed_by_retention);
      }
      // Every 1.0.0 template went, none of 2.0.0's, although that is more than max_packages.
      expect(removed.sort()).toEqual(release('1.0.0').slice(0, 6).sort());
      const latest = await json<Release>(`${server.url}/latest`);
      expect(latest.assets.map((a) => a.name).sort()).toEqual(release('2.0.0').sort());
      const warnings = server.logs().filter((l) => l.level === 'WARN' && / deleted by retention \(max_packages 10\)$/.test(l.message));
      expect(warnings.map((l) => l.name).sort()).toEqual(release('1.0.0').slice(0, 6).sort());
      // An upload that removes nothing says so too.
      expect(last!.removed_by_retention).toEqual([]);
    } finally {
      await server.stop();
    }
  });
});

function form(name: string, content: Buffer): FormData {
  const body = new FormData();
  body.append('file', new Blob([content as BlobPart]), name);
  return body;
}

function parseLinks(header: string): Record<string, string> {
  return Object.fromEntries([...header.matchAll(/<([^>]+)>; rel="(\w+)"/g)].map((m) => [m[2]!, m[1]!]));
}
