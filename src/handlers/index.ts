import { catalogHandlers } from './catalogs.js';
import { fileHandlers } from './files.js';
import { operationHandlers, type OperationHandlerDeps } from './operations.js';
import { packageHandlers, type PackageHandlerDeps } from './packages.js';
import { releaseHandlers } from './releases.js';
import { sourceHandlers } from './sources.js';
import { transferHandlers } from './transfer.js';
import type { Handlers } from './types.js';
import { webHandlers, type WebHandlerDeps } from './web.js';

export type HandlerDeps = PackageHandlerDeps & OperationHandlerDeps & WebHandlerDeps & Parameters<typeof sourceHandlers>[0];

/** Every operation of the contract, keyed by operationId. */
export function createHandlers(deps: HandlerDeps): Handlers {
  return { ...releaseHandlers(deps), ...packageHandlers(deps), ...catalogHandlers(deps), ...fileHandlers(deps), ...sourceHandlers(deps), ...transferHandlers(deps), ...operationHandlers(deps), ...webHandlers(deps) };
}
