import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';

const ROOT = resolve(import.meta.dirname, '../..');

export const HELM_INSTALL_HINT =
  'The chart tests (npm run test:chart) need a helm-compatible "template" command and found none. ' +
  'Install helm (https://helm.sh/docs/intro/install/), or set HELM to a helm-compatible binary, ' +
  'or build the stand-in from the project root with `sh ../shared/tools/helm-render/build.sh .tools/helm-render` ' +
  '(`bash .ci/run` does this). `npm test` does not need helm.';

/**
 * The command the chart tests render with, in the order test/chart/helm-chart.test.ts uses:
 * $HELM, else helm on PATH, else the stand-in .ci/run builds into .tools/.
 */
export function helmCommand(): string {
  if (process.env.HELM) return process.env.HELM;
  if (spawnSync('helm', ['version'], { encoding: 'utf8' }).error === undefined) return 'helm';
  return join(ROOT, '.tools/helm-render');
}

/** Throws HELM_INSTALL_HINT unless the resolved command can be run. */
export function assertHelm(): string {
  const helm = helmCommand();
  const probe = spawnSync(helm, ['template', '--help'], { encoding: 'utf8' });
  // Only "cannot run" counts: the stand-in answers `--help` with a usage error and exit 1.
  if (probe.error !== undefined) {
    throw new Error(`${HELM_INSTALL_HINT} (tried: ${helm})`);
  }
  return helm;
}

/**
 * The objects `helm template` renders from helm/keygate with `--set` values (and any extra
 * arguments, e.g. `-a monitoring.coreos.com/v1`), of one kind. For tests that run what the
 * chart renders in another program (nginx, promtool); the chart's own tests have their own.
 */
export function renderChartKind<T>(
  kind: string,
  sets: readonly string[],
  extra: readonly string[] = [],
): T[] {
  const helm = assertHelm();
  const args = ['template', 'kg', join(ROOT, 'helm/keygate'), ...extra];
  for (const set of sets) args.push('--set', set);
  const out = spawnSync(helm, args, { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`helm template failed: ${out.stderr}`);
  return parseAllDocuments(out.stdout)
    .map((d) => d.toJS() as { kind?: string } | null)
    .filter((d): d is { kind?: string } => d?.kind === kind) as T[];
}
