/**
 * What bounds the work of reading a manifest, each far above real ones (the largest spec-kit manifests have a few
 * hundred nodes and a few KiB): checked in one linear pass over the parsed document before it becomes data, so a
 * manifest costs time in proportion to its size, never more. Apart from manifest.ts, so that what vets a template
 * knows the limit without loading yaml.
 */
export const MANIFEST_LIMITS = { maxBytes: 256 * 1024, maxNodes: 5_000, maxDepth: 32, maxAliases: 16 } as const;
