import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { Logger } from 'pino';
import { parseYaml } from '../lazy-yaml.js';

export const SCOPES = ['read', 'write', 'delete', 'curate'] as const;
export type Scope = (typeof SCOPES)[number];

export interface Token {
  name: string;
  scopes: ReadonlySet<Scope>;
  /** The catalogs mark what this token publishes `verified` (the CLI's badge and `search --verified`). */
  verified: boolean;
}

interface Entry extends Token {
  hash: Buffer;
}

export const MIN_TOKEN_LENGTH = 16;

export const sha256Hex = (value: string): string => createHash('sha256').update(value).digest('hex');

/**
 * The tokens the server accepts, held by the hex SHA-256 of each, so that no file and no memory dump holds one
 * in clear and a lookup is a hash and a map access, whatever the number of tokens. `tokens_file` is read again
 * when it changes (also through a Kubernetes symlink swap) and on SIGHUP; a broken new file keeps the old list.
 */
export class TokenRegistry {
  private entries = new Map<string, Entry>();

  constructor(
    private readonly defaultToken: string | null,
    private readonly file: string | null,
    private readonly log: Logger,
  ) {
    this.entries = this.build();
  }

  /** The token's name and scopes, or null for a token the server does not know. */
  find(token: string): Token | null {
    const hash = createHash('sha256').update(token).digest();
    const entry = this.entries.get(hash.toString('hex'));
    // The map found it by its hash; comparing the digests in constant time keeps the answer's timing flat.
    return entry && timingSafeEqual(entry.hash, hash) ? entry : null;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Re-reads the tokens file; on error keeps the tokens in force and says why. */
  reload(reason: string): void {
    try {
      this.entries = this.build();
      this.log.info({ tokens: this.entries.size, reason }, 'tokens reloaded');
    } catch (err) {
      this.log.error({ file: this.file, reason, error: (err as Error).message }, 'tokens file rejected; the previous tokens stay in force');
    }
  }

  /** Polls the file (stat follows the symlink Kubernetes swaps) and listens for SIGHUP. Returns a stop function. */
  watch(intervalMs = 1000): () => void {
    const onHup = (): void => this.reload('SIGHUP');
    process.on('SIGHUP', onHup);
    if (this.file) watchFile(this.file, { interval: intervalMs }, () => this.reload('file changed'));
    return () => {
      process.off('SIGHUP', onHup);
      if (this.file) unwatchFile(this.file);
    };
  }

  private build(): Map<string, Entry> {
    const entries = new Map<string, Entry>();
    const add = (name: string, hashHex: string, scopes: Scope[], verified = false): void => {
      if ([...entries.values()].some((e) => e.name === name)) throw new Error(`token name "${name}" is used twice`);
      if (entries.has(hashHex)) throw new Error(`token "${name}" has the same hash as "${entries.get(hashHex)!.name}"`);
      entries.set(hashHex, { name, scopes: new Set(scopes), verified, hash: Buffer.from(hashHex, 'hex') });
    };
    if (this.defaultToken !== null) add('default', sha256Hex(this.defaultToken), ['write', 'delete', 'curate']);
    if (this.file) for (const t of parseTokensFile(readFileSync(this.file, 'utf8'), this.file)) add(t.name, t.sha256, t.scopes, t.verified);
    return entries;
  }
}

/** `- {name, scopes, sha256, verified?}` entries; throws naming the entry at the first that is wrong. */
export function parseTokensFile(text: string, path: string): { name: string; scopes: Scope[]; sha256: string; verified: boolean }[] {
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    throw new Error(`${path} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  if (parsed === null || parsed === undefined) return [];
  if (!Array.isArray(parsed)) throw new Error(`${path} must hold a list of {name, scopes, sha256}`);
  return parsed.map((raw: unknown, index) => {
    const entry = raw as { name?: unknown; scopes?: unknown; sha256?: unknown; verified?: unknown };
    const label = `${path} entry ${index + 1}${typeof entry?.name === 'string' ? ` ("${entry.name}")` : ''}`;
    if (typeof entry !== 'object' || entry === null) throw new Error(`${label} must be a mapping`);
    const unknown = Object.keys(entry).filter((k) => !['name', 'scopes', 'sha256', 'verified'].includes(k));
    if (unknown.length) throw new Error(`${label} has an unknown key "${unknown[0]}"`);
    if (typeof entry.name !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(entry.name)) throw new Error(`${label} needs a name of letters, digits, ".", "_" or "-"`);
    if (!Array.isArray(entry.scopes) || entry.scopes.length === 0 || !entry.scopes.every((s) => SCOPES.includes(s as Scope))) {
      throw new Error(`${label} needs scopes among ${SCOPES.join(', ')}`);
    }
    if (typeof entry.sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(entry.sha256)) throw new Error(`${label} needs sha256: the hex SHA-256 of the token`);
    if (entry.verified !== undefined && typeof entry.verified !== 'boolean') throw new Error(`${label} has verified that is neither true nor false`);
    return { name: entry.name, scopes: entry.scopes as Scope[], sha256: entry.sha256.toLowerCase(), verified: entry.verified === true };
  });
}
