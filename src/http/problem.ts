import { STATUS_CODES } from 'node:http';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { PackageError, type PackageErrorCode } from '../service/errors.js';
import { isDiskFull, StorageError } from '../storage/storage.js';
import { HttpProblem } from './http-problem.js';
import { closeUnreadBody } from './request-body.js';

export { HttpProblem };

const TYPE_PREFIX = 'urn:release-server:problem:';

const PACKAGE_STATUS: Record<PackageErrorCode, number> = {
  'not-found': 404,
  exists: 409,
  held: 409,
  'not-approved': 403,
  'invalid-name': 400,
  'invalid-tag': 400,
  empty: 400,
  'checksum-mismatch': 400,
  'invalid-package': 422,
};

/** Kinds for the validator's errors (express-openapi-validator HttpError), by status. */
const KIND_BY_STATUS: Record<number, string> = {
  400: 'invalid-request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not-found',
  405: 'method-not-allowed',
  406: 'not-acceptable',
  413: 'too-large',
  429: 'too-many-requests',
  415: 'unsupported-media-type',
  416: 'range-not-satisfiable',
  503: 'unavailable',
};

/** busboy's parse errors: a client's malformed body, which the validator would otherwise report as a 500. */
const MALFORMED_MULTIPART = new Set([
  'Malformed content type',
  'Malformed part header',
  'Missing Content-Type',
  'Multipart: Boundary not found',
  'Unexpected end of file',
  'Unexpected end of form',
]);

interface ValidatorError {
  status: number;
  message: string;
  errors?: { path: string; message: string }[];
  headers?: Record<string, string>;
}

interface Problem {
  status: number;
  kind: string;
  detail: string;
  headers: Record<string, string>;
  errors?: { path: string; message: string }[] | undefined;
}

/** The one place where an error becomes an HTTP status. */
function toProblem(err: unknown, maxUploadBytes: number, contentType: string | undefined, operationId: string | undefined): Problem {
  if (err instanceof HttpProblem) return { status: err.status, kind: err.kind, detail: err.message, headers: err.headers };
  if (err instanceof PackageError) return { status: PACKAGE_STATUS[err.code], kind: err.code, detail: err.message, headers: {}, errors: err.errors };
  // stale: the service decides again before it lets one through (service/packages.ts onNewest).
  if (err instanceof StorageError && (err.code === 'unavailable' || err.code === 'stale')) return { status: 503, kind: 'unavailable', detail: err.message, headers: {} };
  // An s3 index another process damaged while this one runs: nothing is written over it until it is restored.
  if (err instanceof StorageError && err.code === 'damaged') return { status: 503, kind: 'unavailable', detail: 'the package index is damaged; the server log says which and how to recover', headers: {} };
  // A full disk (ENOSPC, EDQUOT) wherever it surfaced, storage or the multipart parser: nothing was stored.
  if (isDiskFull(err)) return { status: 507, kind: 'insufficient-storage', detail: 'the store has no space left for this upload; nothing was stored', headers: {} };
  const v = err as Partial<ValidatorError>;
  if (MALFORMED_MULTIPART.has(v.message ?? '')) {
    return { status: 400, kind: 'invalid-request', detail: `the multipart body is malformed: ${v.message}`, headers: {} };
  }
  if (typeof v.status === 'number' && v.status >= 400 && v.status < 500) {
    const headers: Record<string, string> = { ...v.headers };
    let detail = v.message ?? '';
    if (v.status === 413) detail = `the upload is larger than max_upload_bytes (${maxUploadBytes} bytes)`;
    if (v.status === 415) {
      // What the validator says ("unsupported media type undefined") tells nobody what to send instead.
      const sent = contentType ? `the body was sent as ${contentType.split(';')[0]}` : 'the request has no body';
      detail =
        operationId === 'createSnapshot'
          ? `${sent}; send JSON, e.g. curl -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{"name": "2026-12"}' $RS/catalogs/snapshots`
          : `${sent}; send the package as multipart/form-data with the file in the field "file", e.g. curl -H "Authorization: Bearer $TOKEN" -F file=@package.zip $RS/upload`;
    }
    // A 415's detail says all there is to say; the validator's one error would only repeat "undefined".
    return { status: v.status, kind: KIND_BY_STATUS[v.status] ?? 'client-error', detail, headers, errors: v.status === 415 ? undefined : v.errors };
  }
  return { status: 500, kind: 'internal', detail: 'internal error; the server log has the details', headers: {} };
}

/** Answers every error as application/problem+json; 5xx details go to the log, never to the client. */
export function problemHandler(options: { maxUploadBytes: number }): ErrorRequestHandler {
  return (err, req, res, _next) => {
    if (res.headersSent) {
      // The answer started and cannot be finished (an export whose store failed mid-archive): cut short, which the
      // request line and metrics report as our failure, with this error (a client that left was reported at close).
      res.err = err as Error;
      res.destroy(err as Error);
      return;
    }
    const problem = toProblem(err, options.maxUploadBytes, req.headers['content-type'], res.locals.operationId);
    closeUnreadBody(req, res);
    // The request line (http/request-log.ts) carries this error.
    if (problem.status >= 500) res.err = err as Error;
    // A validator set for the body that was going to be sent does not describe this one.
    res.removeHeader('ETag');
    res
      .status(problem.status)
      .set(problem.headers)
      .type('application/problem+json')
      .send(
        JSON.stringify({
          type: TYPE_PREFIX + problem.kind,
          title: STATUS_CODES[problem.status] ?? 'Error',
          status: problem.status,
          detail: problem.detail,
          instance: req.originalUrl,
          ...(problem.errors?.length ? { errors: problem.errors.map(({ path, message }) => ({ path, message })) } : {}),
        }),
      );
  };
}

/** For requests no route claimed (the validator answers undocumented paths itself; this is the safety net). */
export const notFound: RequestHandler = (req, _res, next) => {
  next(new HttpProblem(404, 'not-found', `no route for ${req.method} ${req.path}`));
};
