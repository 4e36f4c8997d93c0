import { PassThrough } from 'node:stream';
import type { Request } from 'express';
import { error as validatorErrors } from 'express-openapi-validator';
import type multer from 'multer';
import { unsafeNameReason } from '../domain/names.js';
import type { PackageService } from '../service/packages.js';
import { isDiskFull, type StagedBlob } from '../storage/storage.js';

/** A multipart file as the upload handler receives it: staged in storage, not yet published. */
export interface UploadedFile extends Express.Multer.File {
  staged: StagedBlob;
}

/**
 * Options for the multer that express-openapi-validator runs on multipart requests. Each file streams straight
 * into the storage's staging area (never into memory); whatever the handler does not publish is discarded when
 * the response closes, whether it succeeded, failed or the client went away.
 */
export function uploadOptions(service: PackageService, maxUploadBytes: number): multer.Options {
  const storage: multer.StorageEngine = {
    _handleFile(req, file, done) {
      let staged: StagedBlob | null = null;
      let closed = false;
      // The bytes go through a stream of ours. When staging fails (a full disk), the pipeline destroys this one, not
      // multer's file stream, which would report the bare error itself before ours; the rest of the part is drained
      // instead. And a client that leaves fails the staging with an error that says so: it is the client's doing,
      // not a failure of the store (metrics count only the latter).
      const body = new PassThrough();
      file.stream.once('error', (err) => body.destroy(err));
      // The part closes without ending: staging must fail (and clean up), not wait.
      file.stream.once('close', () => {
        if (!file.stream.readableEnded) body.destroy(new ClientAbortError());
      });
      file.stream.pipe(body);
      req.res?.once('close', () => {
        closed = true;
        if (!body.writableFinished) body.destroy(new ClientAbortError());
        void staged?.discard();
      });
      service.stage(body).then((blob) => {
        staged = blob;
        if (closed) void blob.discard();
        done(null, { size: blob.size, staged: blob } as Partial<UploadedFile>);
      }, (err: unknown) => {
        file.stream.unpipe(body);
        file.stream.resume();
        done(keepCause(req, err));
      });
    },
    _removeFile(_req, file, done) {
      (file as UploadedFile).staged.discard().then(() => done(null), done);
    },
  };

  return {
    storage,
    // Refuse before a byte is stored: a second file, or a name that is not a plain safe file name.
    fileFilter(req, file, accept) {
      const seen = (filesSeen.get(req) ?? 0) + 1;
      filesSeen.set(req, seen);
      const badName = unsafeNameReason(file.originalname);
      if (seen > 1) accept(badRequest(req, 'send exactly one file, in the field "file"'));
      else if (badName) accept(badRequest(req, `${badName}: ${JSON.stringify(file.originalname)}`));
      else accept(null, true);
    },
    limits: { fileSize: maxUploadBytes, fields: 8, fieldSize: 64 * 1024, parts: 16, headerPairs: 32 },
    // Keep the name as sent, so that a name with a path is refused rather than silently cut to its last part.
    preservePath: true,
    defParamCharset: 'utf8',
  };
}

/** The client went away while its upload streamed in. */
export class ClientAbortError extends Error {
  override name = 'ClientAbortError';
  constructor() {
    super('the client closed the connection during the upload');
  }
}

const filesSeen = new WeakMap<Request, number>();

/**
 * The validator turns any error of the file storage into a bare 500 with the message only; one of its own errors
 * passes through unchanged. So a full disk travels as such, with the storage's error as its cause, and the error
 * handler (http/problem.ts) still sees what it was.
 */
function keepCause(req: Request, err: unknown): Error {
  if (!isDiskFull(err)) return err as Error;
  return Object.assign(new validatorErrors.InternalServerError({ path: req.path, message: (err as Error).message }), { cause: err });
}

function badRequest(req: Request, message: string): Error {
  return new validatorErrors.BadRequest({ path: req.path, message });
}
