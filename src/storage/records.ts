import type { Logger } from 'pino';
import { isPackageKind } from '../domain/kinds.js';
import { isSafeName } from '../domain/names.js';
import type { StoredRecord } from './storage.js';

const SHA256 = /^[0-9a-f]{64}$/;
/** A snapshot's record name: a leading dot keeps it apart from every package name. */
const SNAPSHOT_NAME = /^\.snapshot-[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Why a stored record cannot be served, or null when it can. Checks shape only: cheap enough for 100,000 records. */
export function recordProblem(value: unknown, checkBlob: (blob: string) => boolean): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not an object';
  const r = value as Record<string, unknown>;
  const snapshot = r.kind === 'snapshot';
  if (typeof r.name !== 'string' || !(snapshot ? SNAPSHOT_NAME.test(r.name) : isSafeName(r.name))) return 'name missing or not a safe file name';
  if (!Number.isSafeInteger(r.id) || (r.id as number) <= 0) return 'id is not a positive integer';
  if (!Number.isSafeInteger(r.size) || (r.size as number) < 0) return 'size is not a non-negative integer';
  if (typeof r.sha256 !== 'string' || !SHA256.test(r.sha256)) return 'sha256 is not 64 lower-case hex digits';
  if (typeof r.blob !== 'string' || !checkBlob(r.blob)) return 'blob reference missing or malformed';
  for (const key of ['createdAt', 'updatedAt'] as const) {
    if (typeof r[key] !== 'string' || Number.isNaN(Date.parse(r[key] as string))) return `${key} is not a date`;
  }
  if (!Number.isSafeInteger(r.downloadCount) || (r.downloadCount as number) < 0) return 'downloadCount is not a non-negative integer';
  if (r.tag !== null && typeof r.tag !== 'string') return 'tag is neither text nor null';
  if (snapshot) {
    const c = r.snapshot as Record<string, unknown> | undefined;
    if (typeof c !== 'object' || c === null || typeof c.name !== 'string' || typeof c.members !== 'object' || c.members === null) return 'a snapshot without its name and members';
    return null;
  }
  if (!isPackageKind(r.kind)) return 'kind is not a package kind';
  if (r.kind === 'template') {
    if (r.catalog !== null) return 'a template has catalog metadata';
  } else {
    const c = r.catalog as Record<string, unknown> | null;
    if (typeof c !== 'object' || c === null || typeof c.id !== 'string' || typeof c.version !== 'string' || typeof c.name !== 'string') {
      return `an ${String(r.kind)} without catalog metadata (id, version, name)`;
    }
  }
  return null;
}

/** How a record is named in a log line: by its name when it has one, else by its place in the file. */
export function recordLabel(value: unknown, position: number): string {
  const name = (value as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? name : `record #${position}`;
}

/**
 * Splits the records of an index into those that can be served and those that cannot. Each bad one is logged at
 * ERROR by name, and kept verbatim by the caller (written back as it was), so that a later write loses nothing.
 * A name that two records claim keeps the first; the second is kept aside like a bad record.
 */
export function validateRecords(
  raw: readonly unknown[],
  checkBlob: (blob: string) => boolean,
  log: Logger,
  file: string,
): { records: StoredRecord[]; invalid: unknown[] } {
  const records: StoredRecord[] = [];
  const invalid: unknown[] = [];
  const names = new Set<string>();
  const ids = new Set<number>();
  raw.forEach((value, position) => {
    let problem = recordProblem(value, checkBlob);
    const record = value as StoredRecord;
    if (!problem && names.has(record.name)) problem = 'another record has the same name';
    if (!problem && ids.has(record.id)) problem = 'another record has the same id';
    if (problem) {
      log.error({ record: recordLabel(value, position), problem, file }, `package record ${recordLabel(value, position)} is invalid (${problem}); it is kept in the index as it is, but not served`);
      invalid.push(value);
      return;
    }
    names.add(record.name);
    ids.add(record.id);
    records.push(record);
  });
  return { records, invalid };
}

/** The highest numeric id anywhere among records, bad ones included: ids are never handed out twice. */
export function highestId(values: readonly unknown[]): number {
  let max = 0;
  for (const value of values) {
    const id = (value as { id?: unknown } | null)?.id;
    if (typeof id === 'number' && Number.isFinite(id)) max = Math.max(max, Math.floor(id));
  }
  return max;
}
