import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve, sep } from 'node:path';
import { parse } from 'yaml';
import yauzl from 'yauzl';

type Kind = 'extension' | 'preset' | 'workflow';
const SECTION = { extension: 'extensions', preset: 'presets', workflow: 'workflows' } as const;
const MAX_DOWNLOAD = 50 * 1024 * 1024;
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

export interface Installed {
  /** `.specify/<kind>s/<manifest id>/` under the project. */
  path: string;
  manifest: Record<string, Record<string, unknown>>;
  entry: Record<string, unknown>;
}

/**
 * What upstream `specify <kind> add <id>` does with a catalog (../shared/docs/speckit-catalogs.md), written from
 * the doc and independent of the server's code: fetch the catalog (https, or http on loopback), require
 * schema_version and the kind's map, take the entry by id (extensions: else by exact case-insensitive name), require
 * the fields the CLI reads, download with redirects (≤ 50 MiB), check sha256 before writing anything, extract safely,
 * find the manifest at the root or in the only top-level directory, require its id to equal the catalog key (and,
 * as we want of the CLI, its version to equal the catalog's), and copy the folder into the project.
 */
export async function catalogAdd(catalogUrl: string, kind: Kind, idOrName: string, project: string, headers: Record<string, string> = {}): Promise<Installed> {
  checkUrl(catalogUrl, 'Catalog URL');
  const res = await fetch(catalogUrl, { headers, redirect: 'follow' });
  if (res.status !== 200) throw new Error(`Failed to fetch catalog: HTTP ${res.status}`);
  const catalog = (await res.json()) as Record<string, unknown>;
  if (!('schema_version' in catalog)) throw new Error('catalog has no schema_version');
  const map = catalog[SECTION[kind]];
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new Error(`catalog has no ${SECTION[kind]} object`);
  const entries = map as Record<string, Record<string, unknown>>;
  let key = idOrName in entries ? idOrName : undefined;
  if (!key && kind === 'extension') key = Object.keys(entries).find((k) => String(entries[k]!.name).toLowerCase() === idOrName.toLowerCase());
  if (!key) throw new Error(`'${idOrName}' not found in catalog`);
  const entry: Record<string, unknown> = { ...entries[key]!, id: key };
  if (kind === 'extension') for (const field of ['name', 'version', 'description']) if (!(field in entry)) throw new Error(`KeyError: '${field}'`);
  const url = (kind === 'workflow' ? entry.url : entry.download_url) as string | undefined;
  if (!url) throw new Error(`${kind} has no download URL`);
  checkUrl(url, `${kind} download URL`);

  const download = await fetch(url, { headers, redirect: 'follow' });
  if (download.status !== 200) throw new Error(`Failed to download ${kind} from ${url}: HTTP Error ${download.status}`);
  checkUrl(download.url, `${kind} download URL`);
  const bytes = Buffer.from(await download.arrayBuffer());
  if (bytes.length > MAX_DOWNLOAD) throw new Error('download larger than 50 MiB');
  if ('sha256' in entry) {
    const expected = String(entry.sha256).replace(/^sha256:/, '').toLowerCase();
    if (!/^[0-9a-f]{64}$/.test(expected)) throw new Error('invalid sha256 in catalog');
    if (createHash('sha256').update(bytes).digest('hex') !== expected) throw new Error('Integrity check failed');
  }

  const staging = await mkdtemp(join(tmpdir(), 'speckit-client-'));
  await safeExtract(bytes, staging);
  const top = await readdir(staging, { withFileTypes: true });
  const manifestName = `${kind}.yml`;
  let root = staging;
  if (!top.some((d) => d.isFile() && d.name === manifestName)) {
    const dirs = top.filter((d) => d.isDirectory());
    if (dirs.length !== 1) throw new Error(`No ${manifestName} found in package`);
    root = join(staging, dirs[0]!.name);
  }
  const manifest = parse(await readFile(join(root, manifestName), 'utf8')) as Record<string, Record<string, unknown>>;
  const id = manifest[kind]?.id;
  if (id !== key) throw new Error(`manifest id ${String(id)} does not match catalog key ${key}`);
  if (manifest[kind]?.version !== entry.version) throw new Error(`manifest version ${String(manifest[kind]?.version)} is not the catalog's ${String(entry.version)}`);
  const path = join(project, '.specify', SECTION[kind], key);
  await mkdir(dirname(path), { recursive: true });
  await rename(root, path);
  return { path, manifest, entry };
}

function checkUrl(raw: string, what: string): void {
  const url = new URL(raw);
  if (url.protocol === 'https:') return;
  if (url.protocol === 'http:' && LOOPBACK.has(url.hostname)) return;
  throw new Error(`${what} must use HTTPS`);
}

/** The CLI's refusals, applied to every entry before anything is written. */
function safeExtract(bytes: Buffer, dest: string): Promise<void> {
  return new Promise((done, fail) => {
    yauzl.fromBuffer(bytes, { lazyEntries: true, autoClose: false, decodeStrings: true, strictFileNames: false }, (err, zip) => {
      if (err || !zip) return fail(err ?? new Error('not a zip'));
      const files: { entry: yauzl.Entry; target: string }[] = [];
      zip.on('entry', (entry: yauzl.Entry) => {
        const name = entry.fileName;
        const mode = (entry.externalFileAttributes >>> 16) & 0o170000;
        const target = resolve(dest, name);
        if (!target.startsWith(dest + sep) || name.split('/').some((p) => p === '..' || p === '.')) return fail(new Error(`Unsafe path in ZIP archive: '${name}'`));
        if (mode === 0o120000) return fail(new Error('Unsafe symlink in ZIP archive'));
        if (![0, 8].includes(entry.compressionMethod)) return fail(new Error('unsupported compression'));
        if (!name.endsWith('/')) files.push({ entry, target });
        zip.readEntry();
      });
      zip.on('end', async () => {
        try {
          for (const { entry, target } of files) {
            await mkdir(dirname(target), { recursive: true });
            await writeFile(target, await new Promise<Buffer>((ok, ko) => {
              zip.openReadStream(entry, (e, stream) => {
                if (e || !stream) return ko(e);
                const chunks: Buffer[] = [];
                stream.on('data', (c: Buffer) => chunks.push(c));
                stream.on('end', () => ok(Buffer.concat(chunks)));
                stream.on('error', ko);
              });
            }));
          }
          zip.close();
          done();
        } catch (e) {
          fail(e as Error);
        }
      });
      zip.readEntry();
    });
  });
}
