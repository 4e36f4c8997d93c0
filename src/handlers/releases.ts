import type { Config } from '../config.js';
import { JsonBodyCache } from '../http/json-cache.js';
import { baseUrl } from '../http/urls.js';
import type { PackageService } from '../service/packages.js';
import { latestRelease } from './representations.js';
import type { Handler } from './types.js';

export function releaseHandlers({ config, service }: { config: Config; service: PackageService }) {
  const bodies = new JsonBodyCache();

  const getLatestRelease: Handler<'getLatestRelease'> = (req, res) => {
    const base = baseUrl(req, config.publicUrl);
    bodies.send(res, base, service, () => latestRelease(service.list(), base, new Date()));
  };
  return { getLatestRelease };
}
