// First: it holds the young generation small while the modules below load (src/startup-heap.ts).
import { startupDone } from './startup-heap.js';
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp } from './app.js';
import { announcingWrites, runPrimary, workerNumber, WorkerLink } from './cluster.js';
import { fileURLToPath } from 'node:url';
import { FailureLimiter } from './auth/failure-limiter.js';
import { TokenRegistry } from './auth/tokens.js';
import { ConfigError, DEFAULT_CONFIG_PATH, loadConfig, type Config } from './config.js';
import { createLogger } from './logger.js';
import { CONTRACT_JSON_PATH, CONTRACT_PATH, DOCS_PAGE_PATH } from './paths.js';
import { PackageService } from './service/packages.js';
import { FilesystemStorage } from './storage/filesystem.js';
import { Metrics } from './metrics.js';
import type { Storage } from './storage/storage.js';
import { VettingPool } from './vetting/pool.js';
import { loadStaticFiles, loadWebPages } from './web/pages.js';
import { Mirror } from './mirror/sync.js';
import { cliAcceptsUrl } from './http/urls.js';

/** How long in-flight requests may take to finish after SIGTERM. */
const SHUTDOWN_GRACE_MS = 10_000;

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    createLogger('info').child({ module: 'config' }).fatal(`invalid configuration: ${err.message}`);
    process.exit(2);
  }
  const worker = workerNumber();
  // A worker's lines say which worker wrote them: request ids are counted per process.
  const logger = worker === null ? createLogger(config.logLevel) : createLogger(config.logLevel).child({ worker });
  const log = logger.child({ module: 'server' });
  if (worker === null) logger.child({ module: 'config' }).info({ configFile: config.configFile ?? `none at ${process.env.CONFIG_PATH || DEFAULT_CONFIG_PATH}` }, 'configuration loaded');

  let authToken = config.authToken;
  if (authToken === null && config.tokensFile === null) {
    authToken = randomBytes(24).toString('base64url');
    // The one secret ever logged: nothing was configured, and writes must never be open by accident. On a line of
    // its own and as a field, for `jq -r 'select(.token) | .token'`.
    logger.child({ module: 'config' }).warn({ token: authToken }, `generated token for this run (no auth_token configured; uploads and deletes need it): ${authToken}`);
  }
  if (config.workers > 1 && cluster.isPrimary) {
    // One token for every worker: each would otherwise generate its own.
    runPrimary(config.workers, fileURLToPath(import.meta.url), logger.child({ module: 'cluster' }), authToken === config.authToken ? {} : { AUTH_TOKEN: authToken! });
    return;
  }
  let tokens: TokenRegistry;
  try {
    tokens = new TokenRegistry(authToken, config.tokensFile, logger.child({ module: 'auth' }));
  } catch (err) {
    logger.child({ module: 'config' }).fatal(`invalid configuration: TOKENS_FILE: ${(err as Error).message}`);
    process.exit(2);
  }
  const stopWatchingTokens = tokens.watch();
  const authLog = logger.child({ module: 'auth' });
  const limiter = new FailureLimiter(config.authFailuresPerMinute, (client) =>
    authLog.warn({ client, limit: config.authFailuresPerMinute }, 'too many failed authentications; answering 429 for the rest of the minute'),
  );

  const storageLog = logger.child({ module: 'storage' });
  const metrics: Metrics = new Metrics({
    indexSize: () => service.size(),
    refreshLagSeconds: () => ((config.s3 || worker !== null) && service.lastRefreshAt > 0 ? (Date.now() - service.lastRefreshAt) / 1000 : 0),
  });
  // The AWS SDK is loaded only for the s3 backend: it adds ~20 MiB and start-up time a filesystem server does not need.
  const backend: Storage = config.s3
    ? new (await import('./storage/s3.js')).S3Storage(config.s3, storageLog, {
        // Replaced and removed blobs outlive every presigned URL made for them, and then some for slow downloads.
        retiredGraceMs: ((config.downloadRedirectSeconds ?? 900) + 600) * 1000,
      })
    : new FilesystemStorage(config.storagePath, storageLog, worker === null ? {} : { worker: { number: worker, count: config.workers } });
  // Workers tell each other about every change they write (src/cluster.ts).
  const link = worker === null ? null : new WorkerLink(metrics.registry, () => service.refresh(), logger.child({ module: 'cluster' }));
  const storage: Storage = metrics.instrument(link ? announcingWrites(backend, () => link.changed()) : backend, config.storageBackend);
  if (link) metrics.exportFrom(() => link.metrics());
  const where = config.s3 ? `bucket ${config.s3.bucket}${config.s3.endpoint ? ` at ${config.s3.endpoint}` : ''}` : config.storagePath;
  // Uploads are vetted in worker threads: no archive or manifest is parsed on this event loop.
  const vetting = new VettingPool();
  const service = new PackageService(
    storage,
    { maxPackages: config.maxPackages, maxReleases: config.maxReleases, maxVersionsPerPackage: config.maxVersionsPerPackage, vet: (path) => vetting.vet(path) },
    logger.child({ module: 'packages' }),
  );
  // Started before the app is built: the index's reads (a 4 MB checkpoint at 10,000 packages, over the network on
  // s3) go on while the contract is compiled. Awaited below, after listening.
  const opening = service.open();
  opening.catch(() => undefined);
  const mirror = new Mirror(config.sources, service, logger.child({ module: 'mirror' }));
  metrics.watchSyncs(() => mirror.names().map((name) => mirror.status(name)));
  const contract = readFileSync(CONTRACT_PATH);
  const app = createApp({
    config,
    tokens,
    limiter,
    service,
    metrics,
    logger,
    contract,
    contractDocument: JSON.parse(readFileSync(CONTRACT_JSON_PATH, 'utf8')),
    docsPage: readOptional(DOCS_PAGE_PATH),
    webPages: loadWebPages(),
    staticFiles: loadStaticFiles(),
    mirror,
  });

  const server = createServer(
    {
      headersTimeout: config.headersTimeoutSeconds * 1000,
      // No deadline on a whole request: a slow upload that keeps moving is never cut (the idle timeout still is).
      requestTimeout: 0,
      // How often Node enforces headersTimeout: a tenth of it keeps the deadline close to its word.
      connectionsCheckingInterval: Math.min(30_000, Math.max(250, (config.headersTimeoutSeconds * 1000) / 10)),
    },
    app,
  );
  server.once('error', (err) => {
    log.fatal({ err }, `cannot listen on ${config.host}:${config.port}`);
    process.exit(1);
  });
  const listen = () => server.listen(config.port, config.host, () => {
    const { address, port } = server.address() as AddressInfo;
    const url = config.publicUrl ?? `http://${address === '0.0.0.0' || address === '::' ? 'localhost' : address.includes(':') ? `[${address}]` : address}:${port}`;
    log.info({ address, port, url, storage: `${config.storageBackend}: ${where}`, maxPackages: config.maxPackages, readAccess: config.readAccess, tokens: tokens.size }, `listening on ${url}`);
    if (config.publicUrl && !cliAcceptsUrl(config.publicUrl)) {
      log.warn({ publicUrl: config.publicUrl }, `the spec-kit CLI refuses ${config.publicUrl}: it fetches catalogs and downloads over https, or http to localhost only; set public_url to the https URL clients use`);
    }
  });
  // One process listens at once, so that /healthz answers while /readyz says 503 until the index is loaded. A worker
  // listens once it is ready: connections go only to workers that can answer them, while one starts or restarts.
  if (!link) listen();

  limitConnections(server, config);
  // Node answers `Expect: 100-continue` itself unless someone listens: the app sends 100 only after authorization
  // and the size check (src/http/request-body.ts), so a refused upload is never invited to send its body.
  server.on('checkContinue', (req, res) => server.emit('request', req, res));

  // From the start: a signal during start-up (the index still loading) stops the server as cleanly as later.
  const shutdown = (signal: string): void => {
    log.info({ signal }, 'shutting down: no new connections, waiting for requests in flight');
    stopWatchingTokens();
    server.close(() => {
      mirror.close();
    void Promise.allSettled([service.close(), vetting.close()]).finally(() => {
        log.info('stopped');
        process.exit(0);
      });
    });
    server.closeIdleConnections();
    setTimeout(() => {
      log.warn({ graceMs: SHUTDOWN_GRACE_MS }, 'requests still in flight after the grace period; closing their connections');
      server.closeAllConnections();
    }, SHUTDOWN_GRACE_MS).unref();
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);

  // Listening before the index is loaded lets /healthz answer while /readyz says 503 until it is.
  try {
    await opening;
  } catch (err) {
    log.fatal({ err }, `cannot open storage (${config.storageBackend}, ${where}): ${(err as Error).message}`);
    process.exit(1);
  }
  startupDone();
  if (link) listen();
  // Other replicas may write to the same bucket, other workers to the same store.
  if (config.s3 || link) service.startRefresh(config.indexRefreshSeconds * 1000);
  // Scheduled syncs run in one process: every worker would otherwise fetch every source.
  if (worker === null || worker === 1) mirror.schedule();
}

/**
 * Connection limits, so that idle or half-sent connections cannot take the server from everyone else: a cap in all
 * and per client address (past either, a new connection is closed at once), a deadline for the request head, and
 * an idle timeout. No deadline covers a whole request: a slow upload or download that keeps moving is never cut.
 */
function limitConnections(server: Server, config: Config): void {
  server.maxConnections = config.maxConnections;
  server.timeout = config.idleTimeoutSeconds * 1000;
  const perAddress = new Map<string, number>();
  server.on('connection', (socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    const open = (perAddress.get(address) ?? 0) + 1;
    if (open > config.maxConnectionsPerAddress) {
      socket.destroy();
      return;
    }
    perAddress.set(address, open);
    socket.once('close', () => {
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left > 0) perAddress.set(address, left);
      else perAddress.delete(address);
    });
  });
}

function readOptional(path: string): Buffer | null {
  try {
    return readFileSync(path);
  } catch {
    return null;
  }
}

await main();
