import type { Request, Response } from 'express';
import type { operations } from '../../generated/openapi.js';

export type OperationId = keyof operations;

type Parameters<K extends OperationId> = operations[K]['parameters'];
type PathOf<K extends OperationId> = Parameters<K> extends { path: infer P } ? P : Record<string, string>;
type QueryOf<K extends OperationId> = Parameters<K> extends { query?: infer Q } ? NonNullable<Q> : Record<string, never>;
type Responses<K extends OperationId> = operations[K]['responses'];

type ContentOf<R> = R extends { content: infer C } ? C[keyof C] : never;
/** Every body the operation may answer with, as the contract defines it (text bodies may be sent as bytes). */
export type ResponseBody<K extends OperationId> = {
  [S in keyof Responses<K>]: ContentOf<Responses<K>[S]>;
}[keyof Responses<K>] extends infer B
  ? [B] extends [never]
    ? undefined
    : string extends B
      ? B | Buffer
      : B
  : never;

/** A handler for one operation, typed from the contract. */
export type Handler<K extends OperationId> = (
  req: Request<PathOf<K>, ResponseBody<K>, unknown, QueryOf<K>>,
  res: Response<ResponseBody<K>>,
) => Promise<void> | void;

/** One handler per operationId: an operation the contract adds without a handler fails to compile. */
export type Handlers = { [K in OperationId]: Handler<K> };

export type Schemas = import('../../generated/openapi.js').components['schemas'];
