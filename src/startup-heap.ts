import { setFlagsFromString } from 'node:v8';

/**
 * Keeps V8's young generation at its initial size (1 MiB per semi-space) while the server starts, and lets it grow
 * as usual once the index is loaded.
 *
 * Nearly everything start-up allocates survives (modules, the contract, the index): V8 takes that for a busy
 * young generation and doubles it at each scavenge to its maximum, 2 × 8 MiB, which it never gives back, though an
 * idle server uses a few hundred KiB of it. Held at 1 MiB through start-up: idle RSS 86 → 73 MiB (one package
 * stored). Under load it grows again as before, by survival.
 *
 * The flag is process-wide and read at each growth; importing this module first sets it before the others load.
 * Someone who sets it on the command line (or in NODE_OPTIONS) keeps their value.
 */
const FLAG = '--semi-space-growth-factor';
/** V8's default. */
const USUAL = 2;

const chosen = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((arg) => arg.replaceAll('_', '-').startsWith(FLAG));
if (!chosen) setFlagsFromString(`${FLAG}=1`);

/** Start-up is over: the young generation may grow again. */
export function startupDone(): void {
  if (!chosen) setFlagsFromString(`${FLAG}=${USUAL}`);
}
