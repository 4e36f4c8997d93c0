import express, { type Express, type RequestHandler } from 'express';
import * as OpenApiValidator from 'express-openapi-validator';
import type { Logger } from 'pino';
import { pinoHttp } from 'pino-http';
import type { Config } from './config.js';
import { createHandlers } from './handlers/index.js';
import type { OperationId } from './handlers/types.js';
import { bearerAuth } from './http/auth.js';
import { notFound, problemHandler } from './http/problem.js';
import { uploadOptions } from './http/upload.js';
import { httpLoggerOptions } from './logger.js';
import { CONTRACT_PATH } from './paths.js';
import type { PackageService } from './service/packages.js';
import type { PackagesPage } from './views/packages-page.js';

export interface AppDeps {
  config: Config;
  /** The token writes need (the configured one, or the one generated for this run). */
  authToken: string;
  service: PackageService;
  logger: Logger;
  contract: Buffer;
  docsPage: Buffer | null;
  packagesPage: PackagesPage;
}

/**
 * The only place the middleware order is written down:
 * request log → contract (route, security, multipart upload, request checks, response checks) → handler
 * → anything thrown becomes problem+json.
 */
export function createApp(deps: AppDeps): Express {
  const handlers = createHandlers(deps);
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', deps.config.trustProxy);
  app.use(pinoHttp(httpLoggerOptions(deps.logger)));
  app.use(
    OpenApiValidator.middleware({
      apiSpec: CONTRACT_PATH,
      // The contract is linted in CI (redocly lint, and a test boots the server on it): re-checking it against
      // the OpenAPI meta-schema at every start-up only delays readiness.
      validateApiSpec: false,
      validateRequests: true,
      validateResponses: deps.config.validateResponses,
      validateSecurity: { handlers: { bearerAuth: bearerAuth(deps.authToken) } },
      fileUploader: uploadOptions(deps.service, deps.config.maxUploadBytes),
      operationHandlers: {
        basePath: '',
        resolver: (_basePath, route, apiDoc) => {
          const operation = apiDoc.paths?.[route.openApiRoute]?.[route.method.toLowerCase() as 'get'];
          return handlers[operation?.operationId as OperationId] as unknown as RequestHandler;
        },
      },
    }),
  );
  app.use(notFound);
  app.use(problemHandler({ maxUploadBytes: deps.config.maxUploadBytes }));
  return app;
}
