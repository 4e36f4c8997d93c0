import type { BundleComponentKind, CatalogKind } from '../domain/kinds.js';

/**
 * Ids the spec-kit CLI resolves from its own bundle before it asks any catalog (wheel and source checkout), so a
 * catalog entry with one of them would never be installed.
 */
export const BUNDLED_IDS: Record<'extension' | 'preset', readonly string[]> = {
  extension: ['git', 'agent-context', 'assess', 'bug', 'selftest', 'template'],
  preset: ['lean', 'constitution-sync', 'scaffold', 'self-test'],
};

/** The CLI refuses an extension named like one of its core commands. */
export const CORE_COMMANDS = ['analyze', 'checklist', 'clarify', 'constitution', 'converge', 'implement', 'plan', 'specify', 'tasks', 'taskstoissues'] as const;

/** Path segments of the workflow commands. */
export const RESERVED_WORKFLOW_IDS: readonly string[] = ['overlays', 'runs', 'steps'];

/**
 * The components the CLI installs from its own assets (spec-kit 1.0.1: `extensions/`, `presets/`, `workflows/`),
 * with the version each manifest declares: a bundle may pin one of them without this server storing it, and the
 * CLI checks the pin against that version.
 */
export const SHIPPED_WITH_CLI: Record<Exclude<BundleComponentKind, 'step'>, Readonly<Record<string, string>>> = {
  extension: Object.fromEntries(BUNDLED_IDS.extension.map((id) => [id, '1.0.0'])),
  preset: Object.fromEntries(BUNDLED_IDS.preset.map((id) => [id, '1.0.0'])),
  workflow: { speckit: '1.0.0' },
};

/** Step types built into the CLI: `workflow step add` refuses a catalog step that names one. */
export const BUILT_IN_STEP_TYPES: readonly string[] = ['command', 'do-while', 'fan-in', 'fan-out', 'gate', 'if', 'init', 'prompt', 'shell', 'switch', 'while'];

/** Names the CLI keeps for itself in `.specify/workflows/steps/`. */
export const RESERVED_STEP_IDS: readonly string[] = ['.cache', 'step-registry.json'];

/** Kinds with no ids of their own to reserve, listed so that every kind has an entry. */
export const RESERVED_IDS: Record<CatalogKind, readonly string[]> = {
  extension: BUNDLED_IDS.extension,
  preset: BUNDLED_IDS.preset,
  workflow: RESERVED_WORKFLOW_IDS,
  step: [...BUILT_IN_STEP_TYPES, ...RESERVED_STEP_IDS],
  bundle: [],
  integration: [],
};
