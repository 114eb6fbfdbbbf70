import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** Every src/ file reachable from `entry` through static imports (dynamic import() excluded). */
function staticImports(entry: string): Set<string> {
  const seen = new Set<string>();
  const pending = [join(ROOT, entry)];
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    const source = readFileSync(file, 'utf8');
    // `import … from '…'`, `export … from '…'`, `import '…'`; not `import('…')`.
    for (const match of source.matchAll(/^\s*(?:import|export)\b[^;(]*?['"](\.[^'"]+)['"]/gm)) {
      const spec = match[1] ?? '';
      if (!spec.endsWith('.js')) continue;
      pending.push(join(dirname(file), spec.replace(/\.js$/, '.ts')));
    }
  }
  return new Set([...seen].map((f) => relative(ROOT, f)));
}

it('the CLI shares the key runtime with the server but never loads the server itself', () => {
  const reached = staticImports('src/cli.ts');
  // `serve` loads the server with import() when it runs; management commands never do.
  const server = [...reached].filter(
    (f) =>
      f === 'src/app.ts' ||
      f === 'src/serve.ts' ||
      f.startsWith('src/pipeline/') ||
      f.startsWith('src/admin/'),
  );
  expect(server).toEqual([]);
  // The walk works: the key service and the config loader are reached.
  expect(reached).toContain('src/keys/key-service.ts');
  expect(reached).toContain('src/config/load.ts');
});
