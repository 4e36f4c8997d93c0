import type { Config } from '../config.js';
import { baseUrl } from '../http/urls.js';
import type { PackageService } from '../service/packages.js';
import { latestRelease } from './representations.js';
import type { Handler } from './types.js';

export function releaseHandlers({ config, service }: { config: Config; service: PackageService }) {
  const getLatestRelease: Handler<'getLatestRelease'> = (req, res) => {
    res.json(latestRelease(service.list(), baseUrl(req, config.publicUrl), new Date()));
  };
  return { getLatestRelease };
}
