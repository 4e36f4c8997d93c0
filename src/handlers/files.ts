import { notModified } from '../http/conditional.js';
import { streamTo } from '../http/stream.js';
import type { Metrics } from '../metrics.js';
import type { PackageService } from '../service/packages.js';
import type { Handler } from './types.js';

/** How the CLI's download of a step file is labelled; it reads the bytes whatever the type. */
function typeOf(path: string): string {
  if (path.endsWith('.py')) return 'text/x-python; charset=utf-8';
  if (path.endsWith('.yml') || path.endsWith('.yaml')) return 'application/yaml';
  if (path.endsWith('.md')) return 'text/markdown; charset=utf-8';
  return 'application/octet-stream';
}

export function fileHandlers({ service, metrics }: { service: PackageService; metrics: Metrics }) {
  const getPackageFile: Handler<'getPackageFile'> = async (req, res) => {
    const { record, member, bytes } = await service.openFile(req.params.sha256, req.params.path);
    const etag = `"${member.sha256}"`;
    // The URL names immutable bytes: caches may keep them for good.
    res.set({ ETag: etag, 'Cache-Control': 'public, max-age=31536000, immutable' });
    if (notModified(req, etag, undefined)) {
      bytes.destroy();
      res.status(304).end();
      return;
    }
    res.type(typeOf(member.path)).set('Content-Length', String(member.size));
    if (req.method === 'HEAD') {
      bytes.destroy();
      res.end();
      return;
    }
    // The CLI fetches step.yml first and once per install: that fetch is the step's download.
    if (member.path === 'step.yml') {
      service.recordDownload(record);
      metrics.downloaded(record.kind);
    }
    await streamTo(bytes, res);
  };
  // Node leaves the body out of a HEAD answer.
  const headPackageFile: Handler<'headPackageFile'> = getPackageFile as unknown as Handler<'headPackageFile'>;
  return { getPackageFile, headPackageFile };
}
