import express, { type Express, type RequestHandler } from 'express';
import * as OpenApiValidator from 'express-openapi-validator';
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { createHandlers } from './handlers/index.js';
import type { OperationId } from './handlers/types.js';
import type { FailureLimiter } from './auth/failure-limiter.js';
import type { TokenRegistry } from './auth/tokens.js';
import { authorization } from './http/auth.js';
import { admitBody } from './http/request-body.js';
import { securityHeaders } from './http/security-headers.js';
import { patchValidator } from './http/validator-patches.js';
import { restoreHead, restoreHeadOnError, showHeadAsGet } from './http/head.js';
import { ownOrigin } from './http/urls.js';
import { notFound, problemHandler } from './http/problem.js';
import { requestLog } from './http/request-log.js';
import { matchedOperationId, matchedParams } from './http/routes.js';
import { uploadOptions } from './http/upload.js';
import type { Metrics } from './metrics.js';
import type { Mirror } from './mirror/sync.js';
import type { PackageService } from './service/packages.js';
import type { loadStaticFiles, WebPages } from './web/pages.js';

export interface AppDeps {
  config: Config;
  tokens: TokenRegistry;
  limiter: FailureLimiter;
  service: PackageService;
  metrics: Metrics;
  logger: Logger;
  /** The contract's bytes, and the document they hold. */
  contract: Buffer;
  contractDocument: Parameters<typeof authorization>[0];
  docsPage: Buffer | null;
  webPages: WebPages;
  staticFiles: ReturnType<typeof loadStaticFiles>;
  mirror: Mirror;
}

/**
 * The only place the middleware order is written down:
 * metrics → request log → nosniff → authorization (no cross-site writes;
 * scopes from the contract) → the body admitted (size, `100 Continue`) → contract (route, multipart upload, request
 * checks, response checks; a HEAD shown as the GET it stands for, http/head.ts) → handler → anything thrown becomes
 * problem+json.
 */
export function createApp(deps: AppDeps): Express {
  patchValidator();
  const handlers = createHandlers(deps);
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', deps.config.trustProxy);
  app.use(deps.metrics.middleware());
  app.use(requestLog(deps.logger));
  app.use(securityHeaders);
  app.use(
    authorization(deps.contractDocument, {
      tokens: deps.tokens,
      readAccess: deps.config.readAccess,
      limiter: deps.limiter,
      audit: deps.logger.child({ module: 'audit' }),
      ownOrigin: (req) => ownOrigin(req, deps.config.publicUrl),
    }),
  );
  app.use(admitBody(deps.config.maxUploadBytes));
  // The JSON request bodies (a snapshot's name and versions, a decision) are small; anything larger is no such request.
  const json = express.json({ limit: '256kb', type: 'application/json' });
  app.use((req, res, next) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(req, res, next);
    // No read has a body, so its Content-Type means nothing; and the validator caches what it builds for a request by
    // its Content-Type, forever: anyone naming a new one on each read made it build anew (~10 ms of CPU) and keep it.
    delete req.headers['content-type'];
    return next();
  });
  app.use(showHeadAsGet);
  app.use(
    OpenApiValidator.middleware({
      // The validator bundles a deep copy of what it is given (lodash cloneDeep in its middleware()), never this
      // document itself: a second copy here only cost start-up time.
      apiSpec: deps.contractDocument as unknown as Parameters<typeof OpenApiValidator.middleware>[0]['apiSpec'],
      // The contract is linted in CI (redocly lint, and a test boots the server on it): re-checking it against
      // the OpenAPI meta-schema at every start-up only delays readiness.
      validateApiSpec: false,
      validateRequests: true,
      validateResponses: deps.config.validateResponses,
      // Authorization ran already, before the body is read (http/auth.ts).
      validateSecurity: false,
      fileUploader: uploadOptions(deps.service, deps.config.maxUploadBytes),
    }),
  );
  app.use(restoreHead, restoreHeadOnError);
  // The validator matched the route once; its operationId picks the handler (one lookup, not a second router).
  app.use((req, res, next) => {
    const operationId = matchedOperationId(req);
    const handler = handlers[operationId as OperationId] as RequestHandler | undefined;
    // Only an operation authorization found at this path was guarded: any other is no route (defence in depth,
    // should the two matchers ever disagree again).
    if (!handler || !res.locals.routed?.includes(operationId!)) return next();
    // Each middleware of the app gets params of its own; the handler's are the ones the validator matched.
    req.params = matchedParams(req);
    return handler(req, res, next);
  });
  app.use(notFound);
  app.use(problemHandler({ maxUploadBytes: deps.config.maxUploadBytes }));
  return app;
}
