import type { Request, RequestHandler, Response } from 'express';
import { HttpProblem } from './http-problem.js';

/**
 * What is read of a refused body, at most, after the answer: enough for a client that sent ahead to get the
 * answer rather than a reset, and nowhere near the body.
 */
const REFUSED_BODY_MAX_BYTES = 4 * 1024 * 1024;
const REFUSED_BODY_MAX_MS = 2000;
/** Multipart framing and the small form fields multer allows, beside the file that max_upload_bytes bounds. */
const MULTIPART_ALLOWANCE_BYTES = 1024 * 1024;

/**
 * Runs after authorization and before anything reads a body: refuses a declared Content-Length over
 * `max_upload_bytes` (413), and only then sends `100 Continue` to a client that asked for it
 * (`Expect: 100-continue`). A request refused before this point (401, 403, 429) therefore never gets a 100 and
 * need never send its body. main.ts routes `checkContinue` into the app so that Node does not answer 100 itself.
 */
export function admitBody(maxUploadBytes: number): RequestHandler {
  return (req, res, next) => {
    const declared = Number(req.headers['content-length']);
    if (declared > maxUploadBytes + MULTIPART_ALLOWANCE_BYTES) {
      throw new HttpProblem(413, 'too-large', `the request declares ${declared} bytes; the upload is larger than max_upload_bytes (${maxUploadBytes} bytes)`);
    }
    if (/^\s*100-continue\s*$/i.test(req.headers.expect ?? '')) res.writeContinue();
    next();
  };
}

/**
 * Called when a request is answered with a refusal. If its body was not read, the connection ends with the answer
 * (a FIN after it: the client stops sending) and at most a small bound of the body is read meanwhile, then the
 * connection is dropped. Node would otherwise read and discard all of it to keep the connection, so a refused
 * 500 MiB upload would cost the server the upload; closing at once instead would reset the connection under the
 * answer, and the client would never read it (the lingering close web servers do).
 */
export function closeUnreadBody(req: Request, res: Response): void {
  if (req.complete || !hasBody(req.headers)) return;
  // The client must not send another request on this connection...
  res.setHeader('Connection', 'close');
  const socket = req.socket;
  // ...but Node would destroy the socket as soon as the answer is flushed, with body bytes still unread, which
  // resets the connection and can take the answer with it. Ending (a FIN) is enough; the bound below closes it.
  socket.destroySoon = () => {
    if (socket.writable) socket.end();
  };
  res.once('finish', () => {
    let read = 0;
    const cut = () => socket.destroy();
    const timer = setTimeout(cut, REFUSED_BODY_MAX_MS).unref();
    socket.once('close', () => clearTimeout(timer));
    req.on('data', (chunk: Buffer) => {
      read += chunk.length;
      if (read > REFUSED_BODY_MAX_BYTES) cut();
    });
  });
}

function hasBody(headers: { 'content-length'?: string; 'transfer-encoding'?: string }): boolean {
  return Number(headers['content-length']) > 0 || headers['transfer-encoding'] !== undefined;
}
