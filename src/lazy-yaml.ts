import { createRequire } from 'node:module';

/**
 * yaml's `parse`, loaded the first time a file needs it: the library is ~70 modules, 25–45 ms of start-up on two
 * cores, and a server configured by its environment alone (the container's usual case) reads no YAML at all.
 * Synchronous, as configuration is read.
 */
export function parseYaml(text: string): unknown {
  const { parse } = createRequire(import.meta.url)('yaml') as typeof import('yaml');
  return parse(text);
}
