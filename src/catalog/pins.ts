import type { CatalogRecord } from '../domain/catalog.js';
import type { BundleComponent } from '../domain/record.js';
import { samePep440Version } from '../domain/pep440.js';
import { SHIPPED_WITH_CLI } from '../vetting/reserved-ids.js';

/** One pin of a bundle that would not install, named as the bundle names it. */
export interface PinProblem {
  path: string;
  message: string;
}

/**
 * The pins of a bundle that the CLI would fail to install, given what the catalogs it reads hold for each kind
 * and id (`available`: every stored version at upload, the one version a snapshot serves when freezing).
 *
 * The CLI's rules (bundler/services/primitives.py): a component that ships with the CLI installs from the CLI's
 * own assets, checked against their version, whatever a catalog holds; any other component is looked up by id in
 * the catalog configured for its kind and must have exactly the pinned version. A step pin is not enforced by the
 * CLI, but the step must exist; we hold a pinned step to its pin all the same, as the bundle's author meant it.
 */
export function pinProblems(
  components: readonly BundleComponent[],
  available: (kind: BundleComponent['kind'], id: string) => readonly CatalogRecord[],
  /** Where `available` looks, for the messages: `this server`, `snapshot 2026-12`. */
  where = 'this server',
): PinProblem[] {
  const problems: PinProblem[] = [];
  components.forEach((component, index) => {
    const path = `provides.${component.kind}s[${index}] (${component.id})`;
    const label = `${component.kind} ${component.id}`;
    const shipped = component.kind === 'step' ? undefined : SHIPPED_WITH_CLI[component.kind][component.id];
    if (shipped !== undefined) {
      if (component.version !== undefined && !samePep440Version(component.version, shipped)) {
        problems.push({ path, message: `${label} ships with the spec-kit CLI at version ${shipped}, which the CLI installs instead of ${component.version}` });
      }
      return;
    }
    const versions = available(component.kind, component.id);
    if (versions.length === 0) {
      problems.push({ path, message: where === 'this server' ? `${label} is not stored on this server; publish it before the bundle` : `${label} is not in ${where}` });
      return;
    }
    if (component.version === undefined) return;
    if (versions.some((r) => samePep440Version(r.catalog.version, component.version!))) return;
    const stored = versions.map((r) => r.catalog.version).join(', ');
    problems.push({ path, message: `${label} is pinned to ${component.version}, which ${where} does not have (it has ${stored})` });
  });
  return problems;
}

/** The record of each pinned component that `resolve` finds: what a bundle keeps from deletion. */
export function pinnedRecords(components: readonly BundleComponent[], versionsOf: (kind: BundleComponent['kind'], id: string) => readonly CatalogRecord[]): CatalogRecord[] {
  const found: CatalogRecord[] = [];
  for (const component of components) {
    if (component.version === undefined) continue;
    const record = versionsOf(component.kind, component.id).find((r) => samePep440Version(r.catalog.version, component.version!));
    if (record) found.push(record);
  }
  return found;
}
