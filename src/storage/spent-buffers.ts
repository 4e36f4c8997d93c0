import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Frees the buffers that bytes streaming in leave behind, by a minor GC every `EVERY` bytes.
 *
 * Node copies every chunk of a request body into a buffer of its own outside the heap. Its JS object is small, so a
 * 100 MiB upload fills too little of the young generation to trigger a scavenge, and V8 frees those buffers only
 * when 64 MiB of them have piled up, with a full mark-compact of the whole heap. Profiled on 100 MiB uploads: peak RSS
 * +47 MiB over idle and ~220 ms of GC threads' CPU per upload (a bare node:http server, with its tiny heap, pays
 * ~50 ms). A scavenge every 4 MiB received frees them while they are young and cheap to collect: +24 MiB and
 * ~50 ms, with no more main-thread time than before (every 2, 4, 8, 16, 32 MiB measured: +22, +24, +27, +36,
 * +51 MiB; main thread 180-220 ms per upload for each).
 *
 * V8 has no API for a minor GC but its `gc` extension; it is installed in one private context (the global of the
 * server's own context never gets a `gc`), and the flag is set back at once. Where it cannot be had, this does nothing.
 */
const EVERY = 4 * 1024 * 1024;

const minorGc = ((): (() => void) | null => {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as (options: { type: 'minor' }) => void;
    return () => gc({ type: 'minor' });
  } catch {
    return null;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
})();

let received = 0;

/**
 * Counts bytes that arrived in buffers of their own; every EVERY bytes, a minor GC. Piped downloads (from s3, and
 * inflated zip members) pass through here too: 100 MiB from the RGW through the server, the GC threads' CPU went from
 * ~200 ms to ~40 ms per download.
 */
export function spentBuffers(bytes: number): void {
  received += bytes;
  if (received < EVERY) return;
  received = 0;
  minorGc?.();
}
