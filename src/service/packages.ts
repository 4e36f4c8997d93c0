import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { createInflateRaw } from 'node:zlib';
import type { Logger } from 'pino';
import { pinnedRecords, pinProblems } from '../catalog/pins.js';
import { freeze, snapshotOf, snapshotRecordName, type Snapshot, type VersionChoices } from '../catalog/snapshots.js';
import { unsafeNameReason } from '../domain/names.js';
import { catalogFileName, catalogPackages, isCatalogRecord, type CatalogPackage, type CatalogRecord } from '../domain/catalog.js';
import { CATALOG_KINDS, type CatalogKind, type PackageKind } from '../domain/kinds.js';
import { isApproved, isSnapshotRecord, type Approval, type PackageMember, type Provenance, type SnapshotRecord, type StoredRecord } from '../domain/record.js';
import { samePep440Version } from '../domain/pep440.js';
import { latestOrder, newestUploadFirst, releasesNewestFirst, type ReleaseGroup } from '../domain/releases.js';
import { normalizeTag, tagOfName } from '../domain/version.js';
import { StorageError, type ByteRange, type DownloadCount, type PackageRecord, type StagedBlob, type Storage, type WriteOptions } from '../storage/storage.js';
import type { Verdict } from '../vetting/vet.js';
import { PackageError } from './errors.js';
import { Mutex } from './mutex.js';
import { SmallBlobs } from './small-blobs.js';

export interface PackageServiceOptions {
  /** Template packages kept after an upload; 0 keeps all. */
  maxPackages: number;
  /** Template releases (tags) kept after an upload, newest versions first; 0 keeps all. */
  maxReleases?: number;
  /** Versions kept of one extension, preset or workflow; 0 keeps all. The version its catalog serves is always kept. */
  maxVersionsPerPackage?: number;
  /** How long download counts may wait in memory before they are written. */
  countFlushMs?: number;
  /** Vets the archive in a local file (vetting/pool.ts runs it off the event loop). */
  vet: (path: string) => Promise<Verdict>;
}

export interface PublishOptions {
  overwrite: boolean;
  /** Hex SHA-256 the client expects, if it sent one. */
  expectedSha256?: string | undefined;
  /** The release, instead of the version at the end of the name (templates only). */
  tag?: string | undefined;
  /** Published with a token marked `verified`: its catalog entry says so. */
  verified?: boolean;
  /** What a catalog entry said the package is (a mirrored one): the manifest must agree, as the CLI requires. */
  expect?: { kind: CatalogKind; id: string; version: string };
  /** Absent: approved on upload. A mirrored package starts pending. */
  approval?: Approval;
  provenance?: Provenance;
}

interface Views {
  newestFirst: PackageRecord[];
  /** Templates only, as everything release-shaped is. */
  latest: PackageRecord[];
  releases: ReleaseGroup[];
  byTag: Map<string, ReleaseGroup>;
  /** What each kind's catalog offers for install: approved versions only. */
  catalogs: Map<CatalogKind, CatalogPackage[]>;
  /** Keyed `kind/id`; approved versions only. */
  catalogById: Map<string, CatalogPackage>;
  /** Mirrored versions waiting for approval, by kind: the discovery catalogs. */
  discovery: Map<CatalogKind, CatalogPackage[]>;
  /** Keyed `kind/id`: every stored version, whatever its approval. */
  everyVersion: Map<string, CatalogPackage>;
  /** Newest first. */
  snapshots: Snapshot[];
  /** What keeps a record from deletion (`bundle acme-kit 1.0.0`, `snapshot 2026-12`), by record id. */
  holders: Map<number, string[]>;
  /** Packages whose files are served one by one (steps), by the sha256 of their bytes. */
  withFiles: Map<string, CatalogRecord>;
}

/**
 * The packages, held in an in-memory index that start-up builds and every write keeps current, so that reads
 * never touch the directory. Every change of the index runs under one lock: an upload's conflict check, its
 * publish and the retention that follows are one step, whatever else is uploading.
 */
export class PackageService {
  private readonly index = new Map<string, PackageRecord>();
  private readonly byId = new Map<number, PackageRecord>();
  /** Snapshot records, by snapshot name: kept apart from the packages, so no package view can list one. */
  private readonly snapshotRecords = new Map<string, SnapshotRecord>();
  /** Views of the index, rebuilt lazily after a change. */
  private views: Views | null = null;
  private readonly lock = new Mutex();
  private readonly smallBlobs = new SmallBlobs((record, range) => this.storage.read(record, range));
  /** Downloads counted here and not yet added to the stored counts, by record id (see DownloadCount). */
  private unsavedCounts = new Map<number, DownloadCount>();
  /**
   * A batch of counts handed to storage that did not succeed, with its id: retried as it is, under the same id, so
   * that a flush that reached the store though it reported a failure is not added twice.
   */
  private pendingBatch: { id: string; counts: Map<number, DownloadCount> } | null = null;
  private countSaves: Promise<void> = Promise.resolve();
  private refreshTimer: NodeJS.Timeout | null = null;
  /** When the index last matched the store (ms since the epoch): its age is how stale this replica may be. */
  lastRefreshAt = 0;
  private countTimer: NodeJS.Timeout | null = null;
  private lastStamp = 0;
  private loaded = false;
  private opening: Promise<void> | null = null;
  /** Bumped on every change of the package set; lets readers cache what they derive from it. */
  revision = 0;
  /** Bumped on every counted download. */
  countsRevision = 0;

  constructor(
    private readonly storage: Storage,
    private readonly options: PackageServiceOptions,
    private readonly log: Logger,
  ) {}

  /** Loads the index. The server listens meanwhile: reads answer 503 and uploads wait until it is done. */
  open(): Promise<void> {
    this.opening ??= (async () => {
      this.take(await this.storage.open());
      this.loaded = true;
      this.log.info({ packages: this.index.size }, 'package index loaded');
    })();
    return this.opening;
  }

  /** Resolves when the index is loaded and storage is readable and writable. */
  async checkReady(): Promise<void> {
    if (!this.loaded) throw new StorageError('unavailable', 'the package index is still loading');
    await this.storage.check();
  }

  /** Packages in the index; 0 while it loads. */
  size(): number {
    return this.index.size;
  }

  /** Every package, newest upload first. */
  list(): readonly PackageRecord[] {
    return this.currentViews().newestFirst;
  }

  /** What one kind's catalog offers for install: by id (alphabetical), each with its approved versions. */
  catalog(kind: CatalogKind): readonly CatalogPackage[] {
    return this.currentViews().catalogs.get(kind) ?? [];
  }

  /** Versions of one kind waiting for approval, by id. */
  discovery(kind: CatalogKind): readonly CatalogPackage[] {
    return this.currentViews().discovery.get(kind) ?? [];
  }

  /** Every stored version of one id, whatever its approval; `served` is what its catalog offers, if anything. */
  catalogPackage(kind: CatalogKind, id: string): CatalogPackage {
    const found = this.currentViews().everyVersion.get(`${kind}/${id}`);
    if (!found) throw new PackageError('not-found', `no ${kind} with id ${id}`);
    return found;
  }

  /** Every package in the order the spec-kit CLI must see them (see domain/releases.ts). */
  latest(): readonly PackageRecord[] {
    return this.currentViews().latest;
  }

  /** The releases, highest version first, each with its packages. */
  releases(): readonly ReleaseGroup[] {
    return this.currentViews().releases;
  }

  release(tag: string): ReleaseGroup {
    const normalized = normalizeTag(tag);
    const found = normalized && this.currentViews().byTag.get(normalized);
    if (!found) throw new PackageError('not-found', `no release tagged ${tag}`);
    return found;
  }

  /** Every snapshot, newest first. */
  snapshots(): readonly Snapshot[] {
    return this.currentViews().snapshots;
  }

  snapshot(name: string): Snapshot {
    const found = this.currentViews().snapshots.find((s) => s.name === name);
    if (!found) throw new PackageError('not-found', `no snapshot named ${name}`);
    return found;
  }

  /** The bundles that pin this record and the snapshots that hold it: while any does, it cannot be deleted. */
  holdersOf(record: PackageRecord): readonly string[] {
    return this.currentViews().holders.get(record.id) ?? [];
  }

  getById(id: number): PackageRecord {
    this.assertLoaded();
    const record = this.byId.get(id);
    if (!record) throw new PackageError('not-found', `no asset with id ${id}`);
    return record;
  }

  private currentViews(): Views {
    this.assertLoaded();
    if (!this.views) {
      const newestFirst = [...this.index.values()].sort(newestUploadFirst);
      const templates = newestFirst.filter((r) => r.kind === 'template');
      const releases = releasesNewestFirst(templates);
      const catalogs = new Map(CATALOG_KINDS.map((kind) => [kind, catalogPackages(kind, newestFirst, isApproved)]));
      const catalogById = new Map([...catalogs.values()].flat().map((p) => [`${p.kind}/${p.id}`, p]));
      const pending = (r: PackageRecord) => r.approval?.state === 'pending';
      const discovery = new Map(CATALOG_KINDS.map((kind) => [kind, catalogPackages(kind, newestFirst, pending)]));
      // Every version listed, but `served` is what the approved catalog serves, where it serves one.
      const everyVersion = new Map(
        CATALOG_KINDS.flatMap((kind) => catalogPackages(kind, newestFirst)).map((p) => {
          const key = `${p.kind}/${p.id}`;
          const approved = catalogById.get(key);
          return [key, approved ? { ...p, served: approved.served } : p];
        }),
      );
      const catalogRecord = (id: number) => {
        const record = this.byId.get(id);
        return record && isCatalogRecord(record) ? record : undefined;
      };
      const snapshots = [...this.snapshotRecords.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id - a.id).map((r) => snapshotOf(r, catalogRecord));
      this.views = {
        newestFirst,
        latest: latestOrder(templates, releases),
        releases,
        byTag: new Map(releases.map((r) => [r.tag, r])),
        catalogs,
        catalogById,
        discovery,
        everyVersion,
        snapshots,
        withFiles: new Map([...everyVersion.values()].flatMap((p) => p.versions).filter((r) => r.catalog.files).map((r) => [r.sha256, r])),
        holders: holdersOf(catalogs.get('bundle') ?? [], snapshots, (kind, id) => catalogById.get(`${kind}/${id}`)?.versions ?? []),
      };
    }
    return this.views;
  }

  get(name: string): PackageRecord {
    this.assertLoaded();
    this.assertSafeName(name);
    const record = this.index.get(name);
    if (!record) throw new PackageError('not-found', `no package named ${name}`);
    return record;
  }

  /** Streams an upload into storage, invisible until `publish`. */
  async stage(source: Readable): Promise<StagedBlob> {
    if (!this.opening) throw new StorageError('unavailable', 'storage is not open');
    await this.opening;
    return this.storage.stage(source);
  }

  /**
   * Vets a staged upload, then makes it a package: a template under its uploaded `name`, an extension, preset or
   * workflow under the name its kind, id and version give. Retention follows. The staged bytes are gone
   * afterwards either way.
   */
  async publish(name: string, staged: StagedBlob, options: PublishOptions): Promise<{ record: PackageRecord; created: boolean; removed: string[] }> {
    try {
      this.assertSafeName(name);
      if (staged.size === 0) throw new PackageError('empty', `${name} is empty`);
      const expected = options.expectedSha256?.toLowerCase();
      if (expected && expected !== staged.sha256) {
        throw new PackageError('checksum-mismatch', `${name} has SHA-256 ${staged.sha256}, not the ${expected} given in X-Checksum-Sha256`);
      }
      // Outside the lock: vetting reads the whole archive, and other uploads need not wait for it.
      const verdict = await this.options.vet(staged.localPath);
      if (!verdict.accepted) throw refused(verdict.violations);
      const { kind, format } = verdict;
      const catalog = verdict.catalog && options.verified ? { ...verdict.catalog, verified: true } : verdict.catalog;
      if (catalog && options.tag !== undefined) {
        throw new PackageError('invalid-tag', `tag applies to templates; this ${kind}'s version (${catalog.version}) comes from its manifest`);
      }
      const listed = options.expect;
      if (listed && (kind !== listed.kind || catalog?.id !== listed.id || !samePep440Version(catalog.version, listed.version))) {
        const found = catalog ? `${kind} ${catalog.id} ${catalog.version}` : 'a template';
        throw refused([{ path: '(package)', message: `the catalog lists ${listed.kind} ${listed.id} ${listed.version}, but the package is ${found}` }]);
      }
      const storedName = catalog ? catalogFileName(kind as CatalogKind, catalog.id, catalog.version, format) : name;
      const tag = catalog ? null : options.tag === undefined ? tagOfName(name) : normalizeTag(options.tag);
      if (tag === null && !catalog && options.tag !== undefined) throw new PackageError('invalid-tag', `${JSON.stringify(options.tag)} is not a semantic version`);
      return await this.lock.run(async () => {
        // Decided on the store's state: another replica may have made a snapshot or stored a pinned version.
        const { stored, existing } = await this.onNewest(async () => {
          // `1.0` and `1.0.0` are one PEP 440 version, stored under two names: either one is the version replaced.
          const sameVersion = catalog
            ? this.currentViews().everyVersion.get(`${kind}/${catalog.id}`)?.versions.find((r) => samePep440Version(r.catalog.version, catalog.version))
            : undefined;
          const existing = this.index.get(storedName) ?? sameVersion;
          const what = catalog ? `${kind} ${catalog.id} ${existing?.catalog?.version ?? catalog.version}` : storedName;
          if (existing && !options.overwrite) {
            throw new PackageError('exists', `${what} already exists; upload with overwrite=true to replace it`);
          }
          // A snapshot serves these exact bytes (its sha256 is in the frozen catalog): they cannot change under it.
          const snapshots = existing ? this.holdersOf(existing).filter((h) => h.startsWith('snapshot ')) : [];
          if (snapshots.length > 0) {
            throw new PackageError('held', `${what} cannot be replaced: ${snapshots.join(', ')} holds it; publish a new version instead`);
          }
          if (catalog?.components) {
            const problems = pinProblems(catalog.components, (k, id) => this.currentViews().catalogById.get(`${k}/${id}`)?.versions ?? []);
            if (problems.length > 0) throw refused(problems);
          }
          const now = this.stamp();
          // Id, first upload time and count are the store's to decide at the commit (Storage.publish).
          const record: PackageRecord = {
            id: 0,
            name: storedName,
            size: staged.size,
            sha256: staged.sha256,
            createdAt: now,
            updatedAt: now,
            downloadCount: 0,
            tag,
            kind,
            catalog,
            blob: '',
            ...(options.approval && catalog ? { approval: options.approval } : {}),
            ...(options.provenance ? { provenance: options.provenance } : {}),
          };
          try {
            // ifAbsent: another replica may have published the name since this one last looked. current: a catalog
            // version was checked against holds, pins and versions here (nothing holds or pins a template).
            // replaces: 1.0 stored again as 1.0.0 leaves under its old name in the same commit.
            const publishing = { ifAbsent: !existing && !options.overwrite, current: catalog !== null && catalogChange, ...(existing && existing.name !== storedName ? { replaces: existing.name } : {}) };
            return { stored: await this.storage.publish(staged, record, publishing), existing };
          } catch (err) {
            if (err instanceof StorageError && err.code === 'conflict') {
              throw new PackageError('exists', `${storedName} already exists; upload with overwrite=true to replace it`);
            }
            throw err;
          }
        });
        // What this process saw leaves its index: under its old name (1.0 stored as 1.0.0), and under its id, which the
        // store kept, or did not when another process had removed it meanwhile. Counts go by id (addDownloads).
        if (existing) this.forget(existing.name);
        stored.downloadCount += this.unsavedFor(stored.id);
        this.index.set(storedName, stored);
        this.byId.set(stored.id, stored);
        this.changed();
        this.log.info({ name: storedName, kind, tag, size: stored.size, sha256: stored.sha256, replaced: Boolean(existing) }, 'package stored');
        // Retention decides on the store's state: another replica's uploads since the last poll count too. With no
        // limit that could remove anything, that refresh would decide nothing: skipped (one store round trip per
        // upload, ~50 ms on the s3 backend; the periodic refresh still brings other replicas' writes in).
        const removed = this.retentionLimits(stored) ? await this.applyRetention(this.index.get(storedName) ?? stored) : [];
        return { record: stored, created: !existing, removed };
      });
    } finally {
      await staged.discard();
    }
  }

  /**
   * Approves or rejects one stored version: an approved one joins its kind's catalog, a rejected one leaves the
   * discovery catalog, and neither can be downloaded until approved. Resolves with the record as stored.
   */
  async decide(kind: CatalogKind, id: string, version: string, decision: Approval): Promise<PackageRecord> {
    return this.lock.run(async () => {
      const stored = await this.onNewest(async () => {
        const record = this.currentViews().everyVersion.get(`${kind}/${id}`)?.versions.find((r) => samePep440Version(r.catalog.version, version));
        if (!record) throw new PackageError('not-found', `no ${kind} ${id} ${version}`);
        if (decision.state === 'rejected') {
          const holders = this.holdersOf(record);
          if (holders.length > 0) throw new PackageError('held', `${kind} ${id} ${version} cannot be rejected: ${holders.join(', ')} ${holders.length > 1 ? 'need' : 'needs'} it`);
        }
        return this.storage.setApproval(record.name, decision, { current: catalogChange });
      });
      if (isSnapshotRecord(stored)) throw new Error('the store changed the kind of a package record');
      stored.downloadCount += this.unsavedFor(stored.id);
      this.index.set(stored.name, stored);
      this.byId.set(stored.id, stored);
      this.changed();
      this.log.info({ name: stored.name, kind, id, version, state: decision.state, by: decision.by, reason: decision.reason }, `${kind} ${id} ${version} ${decision.state} by ${decision.by}`);
      return stored;
    });
  }

  /**
   * Takes in packages another server exported: each staged one is vetted again, and the new ones become visible in
   * one commit (storage.publishBatch), or none of them does. A package already stored with the same bytes is left
   * as it is, so a second import of one export changes nothing; one stored with other bytes fails the whole import.
   * Every staged blob is gone afterwards either way.
   */
  async importPackages(items: readonly { name: string; staged: StagedBlob; approval: Approval | null; provenance: Provenance | null }[]): Promise<{ imported: string[]; unchanged: string[] }> {
    try {
      const vetted: { item: (typeof items)[number]; kind: CatalogKind | 'template'; catalog: PackageRecord['catalog'] }[] = [];
      for (const item of items) {
        this.assertSafeName(item.name);
        const verdict = await this.options.vet(item.staged.localPath);
        if (!verdict.accepted) throw refused(verdict.violations.map((v) => ({ path: `${item.name}: ${v.path}`, message: v.message })));
        const expected = verdict.catalog ? catalogFileName(verdict.kind as CatalogKind, verdict.catalog.id, verdict.catalog.version, verdict.format) : item.name;
        if (expected !== item.name) throw refused([{ path: item.name, message: `its manifest makes it ${expected}` }]);
        vetted.push({ item, kind: verdict.kind, catalog: verdict.catalog });
      }
      return await this.lock.run(async () => {
        await this.refreshLocked();
        const unchanged: string[] = [];
        const batch: { staged: StagedBlob; record: PackageRecord }[] = [];
        for (const { item, kind, catalog } of vetted) {
          const existing = this.index.get(item.name);
          if (existing && existing.sha256 === item.staged.sha256) {
            unchanged.push(item.name);
            continue;
          }
          if (existing) throw new PackageError('exists', `${item.name} is stored here with other bytes (SHA-256 ${existing.sha256}); nothing was imported`);
          const now = this.stamp();
          batch.push({
            staged: item.staged,
            record: {
              id: 0, name: item.name, size: item.staged.size, sha256: item.staged.sha256, createdAt: now, updatedAt: now, downloadCount: 0,
              tag: catalog ? null : tagOfName(item.name), kind, catalog, blob: '',
              ...(item.approval && catalog ? { approval: item.approval } : {}),
              ...(item.provenance ? { provenance: item.provenance } : {}),
            },
          });
        }
        if (batch.length > 0) {
          let stored: PackageRecord[];
          try {
            stored = await this.storage.publishBatch(batch, { ifAbsent: true });
          } catch (err) {
            if (err instanceof StorageError && err.code === 'conflict') throw new PackageError('exists', `${err.message}; nothing was imported`);
            throw err;
          }
          for (const record of stored) {
            this.index.set(record.name, record);
            this.byId.set(record.id, record);
          }
          this.changed();
        }
        this.log.info({ imported: batch.map((b) => b.record.name), unchanged }, `imported ${batch.length} packages (${unchanged.length} already here)`);
        return { imported: batch.map((b) => b.record.name), unchanged };
      });
    } finally {
      for (const item of items) await item.staged.discard();
    }
  }

  /**
   * Freezes every catalog under `name` (see catalog/snapshots.ts), stored as a record of its own: the commit point is
   * the store's conditional publish, so two replicas cannot both create one name.
   */
  async createSnapshot(name: string, choices: VersionChoices, createdBy: string, options: { exact?: boolean } = {}): Promise<Snapshot> {
    return this.lock.run(() => this.onNewest(async () => {
      if (this.snapshotRecords.has(name)) throw new PackageError('exists', `a snapshot named ${name} exists; delete it first or choose another name`);
      const frozen = freeze(name, (kind) => this.catalog(kind), choices, options.exact);
      if (!frozen.ok && 'missing' in frozen) throw new PackageError('not-found', `not stored here: ${frozen.missing.join(', ')}`);
      if (!frozen.ok) {
        const pins = frozen.pins.map((p) => `${p.path}: ${p.message}`);
        throw new PackageError('held', `the snapshot would break a bundle's pins: ${pins.join('; ')}; choose the pinned versions in "versions"`, frozen.pins);
      }
      const content = { name, members: frozen.members, createdBy };
      const bytes = Buffer.from(`${JSON.stringify(content)}\n`);
      const staged = await this.storage.stage(Readable.from([bytes]));
      try {
        const now = this.stamp();
        const record: SnapshotRecord = {
          id: 0, name: snapshotRecordName(name), size: staged.size, sha256: staged.sha256, createdAt: now, updatedAt: now,
          downloadCount: 0, tag: null, kind: 'snapshot', catalog: null, blob: '', snapshot: content,
        };
        let stored: StoredRecord;
        try {
          // current: its members were frozen from this view; a version deleted elsewhere since must not be in it.
          stored = await this.storage.publish(staged, record, { ifAbsent: true, current: catalogChange });
        } catch (err) {
          if (err instanceof StorageError && err.code === 'conflict') throw new PackageError('exists', `a snapshot named ${name} exists`);
          throw err;
        }
        if (!isSnapshotRecord(stored)) throw new Error('the store changed the kind of a snapshot record');
        this.snapshotRecords.set(name, stored);
        this.changed();
        this.log.info({ snapshot: name, createdBy, members: Object.fromEntries(Object.entries(frozen.members).map(([k, ids]) => [k, ids.length])) }, `snapshot ${name} created`);
        return this.snapshot(name);
      } finally {
        await staged.discard();
      }
    }));
  }

  async deleteSnapshot(name: string): Promise<void> {
    await this.lock.run(async () => {
      // A snapshot another replica made a moment ago is as deletable as one made here.
      await this.refreshLocked();
      const record = this.snapshotRecords.get(name);
      if (!record) throw new PackageError('not-found', `no snapshot named ${name}`);
      try {
        await this.storage.remove(record.name);
      } catch (err) {
        if (!(err instanceof StorageError && err.code === 'not-found')) throw err;
      }
      this.snapshotRecords.delete(name);
      this.changed();
      this.log.info({ snapshot: name }, `snapshot ${name} deleted`);
    });
  }

  async remove(name: string): Promise<void> {
    await this.lock.run(async () => {
      // A snapshot or bundle another replica stored since the last poll holds as much as one made here.
      await this.onNewest(async () => {
        const record = this.get(name);
        const holders = this.holdersOf(record);
        if (holders.length > 0) {
          throw new PackageError('held', `${name} cannot be deleted: ${holders.join(', ')} ${holders.length > 1 ? 'need' : 'needs'} it; delete ${holders.length > 1 ? 'them' : 'it'} first`);
        }
        // current: what holds it was decided here (bundles and snapshots hold catalog versions, never a template).
        await this.deleteLocked(name, { current: record.catalog !== null && catalogChange });
      });
      this.log.info({ name }, 'package deleted');
    });
  }

  /**
   * Opens the bytes of the package named `name` and hands them over with the record they belong to, so that
   * everything a response says (ETag, length, dates) and the bytes it sends come from one record. `prepare` sees the
   * record first (conditional requests, ranges, redirects); `bytesOf` says which bytes its plan needs, or null for
   * none. When the record was replaced or removed between the lookup and the open (its bytes are gone), asks again
   * with the current record.
   */
  async openAsset<P>(
    name: string,
    prepare: (record: PackageRecord) => Promise<P> | P,
    bytesOf: (plan: P) => ByteRange | null,
  ): Promise<{ record: PackageRecord; plan: P; bytes: Readable | Buffer | null }> {
    return this.readCurrent(
      () => this.get(name),
      async (record) => {
        if (!isApproved(record)) throw notApproved(record);
        const plan = await prepare(record);
        const range = bytesOf(plan);
        if (range === null) return { record, plan, bytes: null };
        const small = await this.smallBlobs.get(record);
        if (small) return { record, plan, bytes: small.subarray(range.start, range.end + 1) };
        return { record, plan, bytes: await this.storage.read(record, range) };
      },
      `no package named ${name}`,
    );
  }

  /**
   * One file of a stored step package, found by the package's sha256 and read from where vetting located it: the
   * same URL always gives the same bytes, or not-found once no stored package has that sha256.
   */
  async openFile(sha256: string, path: string): Promise<{ record: PackageRecord; member: PackageMember; bytes: Readable }> {
    const gone = `no file ${path} in a package with SHA-256 ${sha256}`;
    const memberOf = (record: PackageRecord | undefined) => record?.catalog?.files?.find((f) => f.path === path);
    return this.readCurrent(
      () => {
        const record = this.currentViews().withFiles.get(sha256);
        if (!record || !memberOf(record)) throw new PackageError('not-found', gone);
        return record;
      },
      async (record) => {
        const member = memberOf(record)!;
        if (!isApproved(record)) throw notApproved(record);
        if (member.size === 0) return { record, member, bytes: Readable.from([]) };
        const raw = await this.storage.read(record, { start: member.offset, end: member.offset + member.compressedSize - 1 });
        return { record, member, bytes: this.inflated(member, raw) };
      },
      gone,
    );
  }

  /**
   * `read` of the record `current` names now (`current` throws when it names none). Storage lets go of replaced bytes
   * before this index hears of it: a publish in flight here, or another worker's (its word comes a moment later).
   * When the bytes are gone, the refresh waits for the one and reads the other, and the read goes again with the
   * record named then, three times at most.
   */
  private async readCurrent<T>(current: () => PackageRecord, read: (record: PackageRecord) => Promise<T>, gone: string): Promise<T> {
    for (let attempt = 1; ; attempt += 1) {
      const record = current();
      try {
        return await read(record);
      } catch (err) {
        if (!(err instanceof StorageError && err.code === 'not-found')) throw err;
        await this.refresh().catch(() => undefined);
        if (attempt < 3 && current() !== record) continue;
        throw new PackageError('not-found', gone);
      }
    }
  }

  /** A member's bytes as stored in the zip, inflated when compressed. */
  private inflated(member: PackageMember, raw: Readable): Readable {
    if (member.method === 'stored') return raw;
    const inflate = createInflateRaw();
    raw.once('error', (err) => inflate.destroy(err));
    return raw.pipe(inflate);
  }

  /** Where the record's bytes can be fetched from the store directly, or null when this storage cannot say. */
  async presignedUrl(record: PackageRecord, expiresInSeconds: number): Promise<string | null> {
    return this.storage.presignedUrl ? this.storage.presignedUrl(record, expiresInSeconds) : null;
  }

  /**
   * Counts a download; counts reach storage in batches, as increments, so that replicas counting the same package
   * add up rather than overwrite each other.
   */
  recordDownload(record: PackageRecord): void {
    record.downloadCount += 1;
    this.countsRevision += 1;
    const unsaved = this.unsavedCounts.get(record.id);
    if (unsaved) unsaved.count += 1;
    else this.unsavedCounts.set(record.id, { id: record.id, name: record.name, count: 1 });
    this.countTimer ??= setTimeout(() => void this.saveCounts(), this.options.countFlushMs ?? 2000).unref();
  }

  /**
   * Polls storage every `intervalMs` for other processes' writes, and takes them in: one small conditional request
   * per poll while nothing changes.
   */
  startRefresh(intervalMs: number): void {
    this.lastRefreshAt = Date.now();
    const tick = async () => {
      try {
        await this.refresh();
      } catch (err) {
        this.log.warn({ err }, 'could not refresh the package index; serving the last one');
      }
      this.refreshTimer = setTimeout(() => void tick(), intervalMs).unref();
    };
    this.refreshTimer = setTimeout(() => void tick(), intervalMs).unref();
  }

  /**
   * Refreshes, then runs `write`, which decides on this process's view (holds, pins, one PEP 440 version under two
   * names: rules the store does not know) and commits with `current`. When another process changed the records in
   * between, the store refuses that commit (StorageError 'stale', nothing written) and the decision runs again on the
   * newer view: of two conflicting writes, whichever commits second sees the first.
   */
  private async onNewest<T>(write: () => Promise<T>): Promise<T> {
    const since = Date.now();
    for (let attempt = 1; ; attempt += 1) {
      await this.refreshLocked();
      try {
        return await write();
      } catch (err) {
        if (!(err instanceof StorageError && err.code === 'stale')) throw err;
        // Each time, another process committed a change: the store moves on, and this one goes again. Many uploads
        // at once through several workers meet here often; only a long run of losses is given up.
        if (attempt >= 10 && Date.now() - since >= STALE_MS) {
          throw new StorageError('unavailable', `the package index changed under this request ${attempt} times in ${Math.round((Date.now() - since) / 1000)} s (other servers writing); it changed nothing. Try again`);
        }
      }
    }
  }

  /** Takes in what other processes wrote, if anything. */
  async refresh(): Promise<void> {
    await this.lock.run(() => this.refreshLocked());
  }

  private async refreshLocked(): Promise<void> {
    const changes = await this.storage.refresh();
    this.lastRefreshAt = Date.now();
    if (!changes) return;
    for (const record of changes.records) {
      // Downloads counted here and not yet stored stay in what this replica shows.
      record.downloadCount += this.unsavedFor(record.id);
    }
    if (changes.whole) this.take(changes.records);
    else this.takeChanges(changes.records, changes.removed);
  }

  /** Another process's changes folded in: the records it put replace those of their names, the removed ones go. */
  private takeChanges(records: readonly StoredRecord[], removed: readonly string[]): void {
    const touched = new Set([...removed, ...records.map((r) => r.name)]);
    for (const name of touched) {
      const current = this.index.get(name);
      if (current) {
        // A record renamed under its id (1.0 stored again as 1.0.0) may have come in an earlier refresh: the id is
        // the new name's now, and stays so.
        if (this.byId.get(current.id) === current) this.byId.delete(current.id);
        this.index.delete(name);
      }
    }
    // A snapshot is kept under its own name; its record's name is the store's.
    for (const [snapshot, record] of this.snapshotRecords) if (touched.has(record.name)) this.snapshotRecords.delete(snapshot);
    for (const record of records) {
      this.noteStamp(record.updatedAt);
      if (isSnapshotRecord(record)) this.snapshotRecords.set(record.snapshot.name, record);
      else {
        this.index.set(record.name, record);
        this.byId.set(record.id, record);
      }
    }
    this.changed();
  }

  /** Replaces the index with `records` from the store, snapshots apart. */
  private take(records: readonly StoredRecord[]): void {
    this.index.clear();
    this.byId.clear();
    this.snapshotRecords.clear();
    // The newest upload time: compared as text where it is in the form stamp() writes (which orders as time does),
    // parsed only otherwise and once at the end; a Date.parse per record was a tenth of start-up at 100,000.
    let newest = '';
    for (const record of records) {
      const at = record.updatedAt;
      if (CANONICAL_TIME.test(at)) {
        if (at > newest) newest = at;
      } else this.lastStamp = Math.max(this.lastStamp, Date.parse(at));
      if (isSnapshotRecord(record)) {
        this.snapshotRecords.set(record.snapshot.name, record);
        continue;
      }
      this.index.set(record.name, record);
      this.byId.set(record.id, record);
    }
    if (newest) this.lastStamp = Math.max(this.lastStamp, Date.parse(newest));
    this.changed();
  }

  /** Writes what is still only in memory, and stops polling. */
  async close(): Promise<void> {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    await this.saveCounts();
  }

  /** Downloads of the record with this id counted here and not in the store yet. */
  private unsavedFor(id: number): number {
    return (this.unsavedCounts.get(id)?.count ?? 0) + (this.pendingBatch?.counts.get(id)?.count ?? 0);
  }

  /** One flush at a time: a batch that failed goes again, unchanged and under its id, before any new one. */
  private saveCounts(): Promise<void> {
    if (this.countTimer) clearTimeout(this.countTimer);
    this.countTimer = null;
    this.countSaves = this.countSaves.then(async () => {
      // The failed batch (if any), then one new batch: the rest waits for the next flush.
      for (let round = 0; round < 2; round += 1) {
        if (!this.pendingBatch) {
          if (this.unsavedCounts.size === 0) return;
          this.pendingBatch = { id: randomUUID(), counts: this.unsavedCounts };
          this.unsavedCounts = new Map();
        }
        try {
          await this.storage.addDownloads([...this.pendingBatch.counts.values()], this.pendingBatch.id);
          this.pendingBatch = null;
        } catch (err) {
          // Kept, as it is, for the next attempt rather than lost.
          this.countTimer ??= setTimeout(() => void this.saveCounts(), this.options.countFlushMs ?? 2000).unref();
          this.log.error({ err }, 'could not save download counts; will retry');
          return;
        }
      }
    });
    return this.countSaves;
  }

  /** True when some retention limit could remove a package after `kept` was stored. */
  private retentionLimits(kept: PackageRecord): boolean {
    if (kept.kind === 'template') return (this.options.maxReleases ?? 0) > 0 || this.options.maxPackages > 0;
    return (this.options.maxVersionsPerPackage ?? 0) > 0 && kept.catalog !== null;
  }

  /**
   * Applies the retention of the kind just uploaded; never deletes `kept` itself. Runs under the lock. Resolves
   * with the names it deleted, which the upload's answer reports; each deletion is a WARN line.
   */
  private async applyRetention(kept: PackageRecord): Promise<string[]> {
    const removed: string[] = [];
    try {
      await this.onNewest(() => (kept.kind === 'template' ? this.applyTemplateRetention(kept, removed) : this.applyVersionRetention(kept, removed)));
    } catch (err) {
      // The upload itself is stored; what retention did not delete goes after a later upload.
      if (!(err instanceof StorageError && err.code === 'unavailable')) throw err;
      this.log.warn({ err, name: kept.name }, 'retention was cut short: the package index kept changing; the next upload applies it');
    }
    return removed;
  }

  /**
   * Deletes whole releases beyond the newest max_releases, then the oldest templates beyond max_packages. Neither
   * ever touches the release just uploaded to (nor the package, when it has no release): one CI run publishing a
   * release of 24 templates keeps all 24, and an old hotfix just uploaded stays beside the newest max_releases.
   */
  private async applyTemplateRetention(kept: PackageRecord, removed: string[]): Promise<void> {
    const protectedRecord = (r: PackageRecord) => r.name === kept.name || (kept.tag !== null && r.tag === kept.tag);
    const maxReleases = this.options.maxReleases ?? 0;
    if (maxReleases > 0) {
      const doomed = this.releases().slice(maxReleases).filter((r) => r.tag !== kept.tag);
      for (const release of doomed) {
        for (const record of release.records) await this.deleteLocked(record.name);
        removed.push(...release.records.map((r) => r.name));
        this.log.warn({ tag: release.tag, packages: release.records.map((r) => r.name), maxReleases }, `release ${release.tag} deleted by retention (max_releases ${maxReleases})`);
      }
    }
    const max = this.options.maxPackages;
    if (max === 0) return;
    // Oldest first, once: each deletion would otherwise rebuild the views and filter them again.
    const doomed = this.list().filter((r) => r.kind === 'template' && !protectedRecord(r)).reverse();
    let excess = this.list().filter((r) => r.kind === 'template').length - max;
    for (const oldest of doomed) {
      if (excess <= 0) break;
      await this.deleteLocked(oldest.name);
      removed.push(oldest.name);
      excess -= 1;
      this.log.warn({ name: oldest.name, maxPackages: max }, `${oldest.name} deleted by retention (max_packages ${max})`);
    }
  }

  /** Deletes the lowest versions of one id beyond max_versions_per_package; never the one its catalog serves. */
  private async applyVersionRetention(kept: PackageRecord, removed: string[]): Promise<void> {
    const max = this.options.maxVersionsPerPackage ?? 0;
    if (max === 0 || !kept.catalog) return;
    const group = this.catalogPackage(kept.kind as CatalogKind, kept.catalog.id);
    let excess = group.versions.length - max;
    // A version a bundle pins or a snapshot holds is never removed: it counts, and the next one goes instead.
    const lowestFirst = group.versions.filter((r) => r !== group.served && r.name !== kept.name && this.holdersOf(r).length === 0).reverse();
    for (const record of lowestFirst) {
      if (excess <= 0) break;
      // current: decided free of holds here; a snapshot made elsewhere since may hold it.
      await this.deleteLocked(record.name, { current: catalogChange });
      removed.push(record.name);
      excess -= 1;
      this.log.warn({ name: record.name, kind: record.kind, id: kept.catalog.id, maxVersionsPerPackage: max }, `${record.name} deleted by retention (max_versions_per_package ${max})`);
    }
  }

  private async deleteLocked(name: string, options: WriteOptions = {}): Promise<void> {
    try {
      await this.storage.remove(name, options);
    } catch (err) {
      if (!(err instanceof StorageError && err.code === 'not-found')) throw err;
    }
    this.forget(name);
  }

  /** A record the store no longer holds leaves the index here. */
  private forget(name: string): void {
    const record = this.index.get(name);
    if (record) this.byId.delete(record.id);
    this.index.delete(name);
    this.changed();
  }

  private assertLoaded(): void {
    if (!this.loaded) throw new StorageError('unavailable', 'the package index is still loading');
  }

  private assertSafeName(name: string): void {
    const unsafe = unsafeNameReason(name);
    if (unsafe) throw new PackageError('invalid-name', `${unsafe}: ${JSON.stringify(name)}`);
  }

  private changed(): void {
    this.views = null;
    this.revision += 1;
  }

  /** Keeps this process's next stamp after an upload time another process wrote. */
  private noteStamp(at: string): void {
    const time = Date.parse(at);
    if (!Number.isNaN(time)) this.lastStamp = Math.max(this.lastStamp, time);
  }

  /** Upload times strictly increase, so "newest first" is a total order even within one millisecond. */
  private stamp(): string {
    this.lastStamp = Math.max(Date.now(), this.lastStamp + 1);
    return new Date(this.lastStamp).toISOString();
  }
}

/**
 * The changes a decision on catalogs, holds and pins depends on (WriteOptions.current): those to any record but a
 * template's. A template is in no catalog, and nothing holds or pins one.
 */
const catalogChange = (changed: StoredRecord): boolean => changed.kind !== 'template';

/** How long a decision runs again while other processes keep changing the index under it (then 503). */
const STALE_MS = 10_000;

/** The form Date#toISOString writes (stamp() does): as text, it orders as the times do. */
const CANONICAL_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** A package vetting refused, as the error the HTTP layer answers 422 for, every violation listed. */
function refused(violations: { path: string; message: string }[]): PackageError {
  const first = violations[0];
  const summary = first ? `${first.path}: ${first.message}` : 'the package cannot be installed';
  const more = violations.length > 1 ? ` (and ${violations.length - 1} more)` : '';
  return new PackageError('invalid-package', `the package was refused: ${summary}${more}`, violations);
}

/**
 * What holds each record: the bundles that pin it (every stored version of every bundle) and the snapshots that
 * freeze it. A bundle never holds itself, and an unpinned step holds nothing (no version to keep).
 */
function holdersOf(
  bundles: readonly CatalogPackage[],
  snapshots: readonly Snapshot[],
  versionsOf: (kind: CatalogKind, id: string) => readonly CatalogRecord[],
): Map<number, string[]> {
  const holders = new Map<number, string[]>();
  const hold = (id: number, by: string) => {
    const list = holders.get(id);
    if (!list) holders.set(id, [by]);
    else if (!list.includes(by)) list.push(by);
  };
  for (const bundle of bundles.flatMap((p) => p.versions)) {
    for (const pinned of pinnedRecords(bundle.catalog.components ?? [], versionsOf)) hold(pinned.id, `bundle ${bundle.catalog.id} ${bundle.catalog.version}`);
  }
  for (const snapshot of snapshots) {
    for (const pkg of [...snapshot.catalogs.values()].flat()) hold(pkg.served.id, `snapshot ${snapshot.name}`);
  }
  return holders;
}

/** A download of what is not approved: the discovery catalogs list it, and the CLI treats them as discovery-only. */
function notApproved(record: PackageRecord): PackageError {
  const state = record.approval?.state ?? 'approved';
  const how = state === 'pending' ? 'is waiting for approval (POST /catalogs/{kind}/{id}/{version}/approve)' : `was rejected${record.approval?.reason ? `: ${record.approval.reason}` : ''}`;
  return new PackageError('not-approved', `${record.name} ${how}; it cannot be downloaded until approved`);
}
