/**
 * What the spec-kit fork's `specify init --template-url` does (../shared/docs/specify-client.md): GET the
 * release with redirects followed, require 200 and a tag_name, take the FIRST asset whose name contains
 * `spec-kit-template-<ai>-<script>` and ends in `.zip`, download it (200 required), and unzip it.
 */
export async function specifyInit(templateUrl: string, ai: string, script: string, githubToken?: string): Promise<{ tag: string; asset: string; zip: Buffer; contentLength: string | null }> {
  const headers: Record<string, string> = githubToken ? { authorization: `Bearer ${githubToken}` } : {};
  const meta = await fetch(templateUrl, { headers, redirect: 'follow' });
  if (meta.status !== 200) throw new Error(`metadata request answered ${meta.status}`);
  const release = (await meta.json()) as { tag_name: string; assets?: { name: string; browser_download_url: string; size: number }[] };
  const tag = release.tag_name;
  if (typeof tag !== 'string') throw new Error('release has no tag_name');
  const pattern = `spec-kit-template-${ai}-${script}`;
  const asset = (release.assets ?? []).find((a) => a.name.includes(pattern) && a.name.endsWith('.zip'));
  if (!asset) throw new Error(`no asset matches ${pattern}; saw ${(release.assets ?? []).map((a) => a.name).join(', ')}`);
  if (!Number.isInteger(asset.size)) throw new Error('asset size is not an integer');
  const download = await fetch(asset.browser_download_url, { headers, redirect: 'follow' });
  if (download.status !== 200) throw new Error(`download answered ${download.status}`);
  return { tag, asset: asset.name, zip: Buffer.from(await download.arrayBuffer()), contentLength: download.headers.get('content-length') };
}
