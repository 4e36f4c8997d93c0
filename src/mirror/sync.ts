import type { Logger } from 'pino';
import { samePep440Version } from '../domain/pep440.js';
import { CATALOG_KINDS, type CatalogKind } from '../domain/kinds.js';
import type { PackageService } from '../service/packages.js';
import { PackageError } from '../service/errors.js';
import type { StagedBlob } from '../storage/storage.js';
import type { CatalogEntry } from './entries.js';
import { createSourceFetcher, FetchError, parseSha256 } from './fetch.js';
import { compileGlob, runFilters, sourceFilters } from './filters.js';
import { FailureGate, type Source } from './sources.js';

/** One entry that was not mirrored, and why. */
export interface SyncRefusal {
  kind: CatalogKind;
  id: string;
  version: string | null;
  reason: string;
}

/** What one run did. */
export interface SyncReport {
  startedAt: string;
  finishedAt: string | null;
  /** Entries the catalogs listed that passed the filters. */
  total: number;
  done: number;
  /** Newly stored, pending approval. */
  stored: number;
  /** Already stored with the same bytes. */
  unchanged: number;
  bytes: number;
  refused: SyncRefusal[];
  /** Why the run as a whole stopped early, if it did. */
  error: string | null;
}

export interface SourceStatus {
  name: string;
  catalogs: Partial<Record<CatalogKind, string>>;
  running: boolean;
  /** While the source has failed max_fails times in a row: no sync until then. */
  setAsideUntil: string | null;
  last: SyncReport | null;
}

/**
 * Brings each configured source's catalogs into the store: every new entry's download is fetched within the source's
 * limits, checked against the sha256 the source gives, vetted as an upload is, and stored pending approval with its
 * provenance. A version already stored is never replaced: the same bytes are "unchanged", other bytes are refused as
 * changed upstream. The service stays the only writer of the index.
 */
export class Mirror {
  private readonly state = new Map<string, { source: Source; gate: FailureGate; running: Promise<SyncReport> | null; current: SyncReport | null; last: SyncReport | null; timer: NodeJS.Timeout | null }>();

  constructor(
    sources: readonly Source[],
    private readonly service: PackageService,
    private readonly log: Logger,
  ) {
    for (const source of sources) this.state.set(source.name, { source, gate: new FailureGate(source), running: null, current: null, last: null, timer: null });
  }

  names(): string[] {
    return [...this.state.keys()];
  }

  status(name: string): SourceStatus {
    const entry = this.entry(name);
    const aside = entry.gate.available() ? null : entry.gate.setAsideUntil();
    return {
      name,
      catalogs: entry.source.catalogs,
      running: entry.running !== null,
      setAsideUntil: aside === null ? null : new Date(aside).toISOString(),
      last: entry.current ?? entry.last,
    };
  }

  /** Starts a run unless one is going; resolves at once with the run's promise. */
  start(name: string): { started: boolean; done: Promise<SyncReport> } {
    const entry = this.entry(name);
    if (entry.running) return { started: false, done: entry.running };
    entry.running = this.run(name).finally(() => {
      entry.running = null;
    });
    return { started: true, done: entry.running };
  }

  /** Runs every source with a sync_interval on its schedule; a failing source never delays the others. */
  schedule(): void {
    for (const [name, entry] of this.state) {
      const every = entry.source.syncIntervalSeconds;
      if (every === null) continue;
      const tick = () => {
        if (entry.gate.available()) void this.start(name).done.catch(() => undefined);
        entry.timer = setTimeout(tick, every * 1000).unref();
      };
      entry.timer = setTimeout(tick, every * 1000).unref();
    }
  }

  close(): void {
    for (const entry of this.state.values()) if (entry.timer) clearTimeout(entry.timer);
  }

  private entry(name: string) {
    const entry = this.state.get(name);
    if (!entry) throw new PackageError('not-found', `no source named ${name}`);
    return entry;
  }

  private async run(name: string): Promise<SyncReport> {
    const entry = this.entry(name);
    const { source } = entry;
    const report: SyncReport = { startedAt: new Date().toISOString(), finishedAt: null, total: 0, done: 0, stored: 0, unchanged: 0, bytes: 0, refused: [], error: null };
    entry.current = report;
    const fetcher = createSourceFetcher(source);
    this.log.info({ source: name }, `sync of ${name} started`);
    try {
      const accepted: CatalogEntry[] = [];
      for (const kind of CATALOG_KINDS) {
        const url = source.catalogs[kind];
        if (!url) continue;
        let catalog;
        try {
          catalog = await fetcher.catalog(kind);
        } catch (err) {
          throw new Error(`the ${kind} catalog ${url} could not be read: ${(err as Error).message}`, { cause: err });
        }
        for (const r of catalog.refused) report.refused.push({ kind, id: r.entry.id, version: r.entry.version, reason: r.reason });
        const filtered = runFilters(catalog.entries, sourceFilters(source));
        for (const r of filtered.refused) report.refused.push({ kind, id: r.entry.id, version: r.entry.version, reason: r.reason });
        accepted.push(...filtered.accepted.map((e) => ({ ...e, referrer: catalog.url })));
      }
      report.total = accepted.length;
      // All at once: the fetcher's limiter bounds the downloads (source.concurrency), the vetting pool the vetting.
      await Promise.all(
        accepted.map((e) =>
          (async () => {
            try {
              const outcome = await this.mirrorEntry(source, fetcher, e as CatalogEntry & { referrer: string });
              if (outcome === 'stored') report.stored += 1;
              else report.unchanged += 1;
            } catch (err) {
              report.refused.push({ kind: e.kind, id: e.id, version: e.version, reason: reasonOf(err) });
            } finally {
              report.done += 1;
              report.bytes = fetcher.budget.used;
              if (report.done % 50 === 0) this.log.info({ source: name, done: report.done, total: report.total, bytes: report.bytes }, `sync of ${name}: ${report.done}/${report.total}`);
            }
          })(),
        ),
      );
      entry.gate.succeeded();
    } catch (err) {
      report.error = reasonOf(err);
      entry.gate.failed();
      this.log.warn({ source: name, error: report.error }, `sync of ${name} stopped: ${report.error}`);
    }
    report.finishedAt = new Date().toISOString();
    report.bytes = fetcher.budget.used;
    entry.last = report;
    entry.current = null;
    this.log.info({ source: name, total: report.total, stored: report.stored, unchanged: report.unchanged, refused: report.refused.length, bytes: report.bytes }, `sync of ${name} finished`);
    return report;
  }

  /** Stores one entry, or says it is stored already; throws with the reason it cannot be mirrored. */
  private async mirrorEntry(source: Source, fetcher: ReturnType<typeof createSourceFetcher>, entry: CatalogEntry & { referrer: string }): Promise<'stored' | 'unchanged'> {
    if (entry.download.type === 'none') throw new Error(entry.download.reason);
    if (entry.download.type === 'step-files') throw new Error('steps are fetched file by file; mirroring them is not supported yet');
    const declared = entry.sha256 === undefined ? null : parseSha256(entry.sha256);
    const existing = this.stored(entry.kind, entry.id, entry.version);
    // Nothing to fetch: the source vouches for the same bytes we hold.
    if (existing && declared !== null && (declared === existing.sha256 || declared === existing.provenance?.upstreamSha256)) return 'unchanged';
    let staged: StagedBlob | null = null;
    try {
      const fetched = await fetcher.download(entry.download.url, async (body) => {
        staged = await this.service.stage(body);
      }, { referrer: entry.referrer, ...(entry.sha256 !== undefined ? { expectedSha256: entry.sha256 } : {}) });
      const blob = staged as StagedBlob | null;
      if (!blob) throw new Error('the download left nothing to store');
      if (existing) {
        if (existing.sha256 === blob.sha256) return 'unchanged';
        throw new Error(`changed upstream: ${entry.kind} ${entry.id} ${entry.version} is stored with SHA-256 ${existing.sha256}, and the source now serves ${blob.sha256}; a stored version is never replaced`);
      }
      const now = new Date().toISOString();
      const approved = autoApproved(source, entry);
      await this.service.publish(`${entry.kind}-${entry.id}.zip`, blob, {
        overwrite: false,
        expect: { kind: entry.kind, id: entry.id, version: entry.version },
        approval: approved ? { state: 'approved', at: now, by: `policy:${source.name}`, reason: approved } : { state: 'pending', at: now, by: `source:${source.name}` },
        provenance: { source: source.name, url: fetched.finalUrl, upstreamSha256: declared, fetchedAt: now },
      });
      staged = null;
      return 'stored';
    } finally {
      const left = staged as StagedBlob | null;
      if (left) await left.discard();
    }
  }

  private stored(kind: CatalogKind, id: string, version: string) {
    try {
      return this.service.catalogPackage(kind, id).versions.find((r) => samePep440Version(r.catalog.version, version));
    } catch (err) {
      if (err instanceof PackageError && err.code === 'not-found') return undefined;
      throw err;
    }
  }
}

/** Why the source's policy approves this entry as it is mirrored, or null when a curator must. */
function autoApproved(source: Source, entry: CatalogEntry): string | null {
  const id = source.autoApprove.ids.find((glob) => compileGlob(glob)(entry.id));
  if (id !== undefined) return `auto_approve.ids matches ${JSON.stringify(id)}`;
  if (source.autoApprove.verified && entry.fields.verified === true) return 'auto_approve.verified: the source marks it verified';
  return null;
}

/** One line that says why, for the report: a refused package lists its first violations. */
function reasonOf(err: unknown): string {
  if (err instanceof PackageError && err.errors && err.errors.length > 0) {
    return `refused by vetting: ${err.errors.slice(0, 3).map((e) => `${e.path}: ${e.message}`).join('; ')}${err.errors.length > 3 ? ` (and ${err.errors.length - 3} more)` : ''}`;
  }
  if (err instanceof FetchError) return `${err.code}: ${err.message}`;
  return (err as Error).message;
}
