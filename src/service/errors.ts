export type PackageErrorCode = 'not-found' | 'exists' | 'held' | 'not-approved' | 'invalid-name' | 'invalid-tag' | 'empty' | 'checksum-mismatch' | 'invalid-package';

/** A request the package service refuses; the HTTP layer maps the code to a status in one place. */
export class PackageError extends Error {
  constructor(
    readonly code: PackageErrorCode,
    message: string,
    /** For a package that failed vetting: each violation, where it is and what is wrong. */
    readonly errors?: { path: string; message: string }[],
  ) {
    super(message);
    this.name = 'PackageError';
  }
}
