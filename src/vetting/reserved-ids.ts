import type { CatalogKind } from '../domain/kinds.js';

/**
 * Ids the spec-kit CLI resolves from its own bundle before it asks any catalog (wheel and source checkout), so a
 * catalog entry with one of them would never be installed.
 */
export const BUNDLED_IDS: Record<Exclude<CatalogKind, 'workflow'>, readonly string[]> = {
  extension: ['git', 'agent-context', 'assess', 'bug', 'selftest', 'template'],
  preset: ['lean', 'constitution-sync', 'scaffold', 'self-test'],
};

/** The CLI refuses an extension named like one of its core commands. */
export const CORE_COMMANDS = ['analyze', 'checklist', 'clarify', 'constitution', 'converge', 'implement', 'plan', 'specify', 'tasks', 'taskstoissues'] as const;

/** Path segments of the workflow commands. */
export const RESERVED_WORKFLOW_IDS: readonly string[] = ['overlays', 'runs', 'steps'];
