import type { ErrorRequestHandler, RequestHandler } from 'express';

/**
 * HEAD is GET without the body (RFC 9110 section 9.3.2), and every server must take it: `curl -I`, link checkers
 * and caches send it. The contract declares HEAD only where it answers differently (a download's headers); anywhere
 * else the validator, which matches methods exactly, would answer 405. So it is shown the GET the HEAD stands for,
 * and everything after it sees HEAD again: Express and Node then send the GET's headers without a body.
 */
export const showHeadAsGet: RequestHandler = (req, res, next) => {
  if (res.locals.headAsGet && req.method === 'HEAD') req.method = 'GET';
  next();
};

export const restoreHead: RequestHandler = (req, res, next) => {
  if (res.locals.headAsGet) req.method = 'HEAD';
  next();
};

/** The same when the validator refused the request: its problem is answered, and logged, as the HEAD it was. */
export const restoreHeadOnError: ErrorRequestHandler = (err, req, res, next) => {
  if (res.locals.headAsGet) req.method = 'HEAD';
  next(err);
};
