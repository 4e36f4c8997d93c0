export type PackageErrorCode = 'not-found' | 'exists' | 'invalid-name' | 'invalid-tag' | 'empty' | 'checksum-mismatch';

/** A request the package service refuses; the HTTP layer maps the code to a status in one place. */
export class PackageError extends Error {
  constructor(readonly code: PackageErrorCode, message: string) {
    super(message);
    this.name = 'PackageError';
  }
}
