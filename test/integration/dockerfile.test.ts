import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');

interface Stage {
  name: string;
  from: string;
  lines: string[];
}

/** Instructions, with line continuations joined and comments dropped, grouped by stage. */
function stages(): { args: Record<string, string>; stages: Stage[] } {
  const instructions = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const args: Record<string, string> = {};
  const result: Stage[] = [];
  for (const line of instructions) {
    const [op = '', ...rest] = line.split(/\s+/);
    const instruction = op.toUpperCase();
    if (instruction === 'ARG' && result.length === 0) {
      const [k, v = ''] = (rest[0] ?? '').split('=');
      args[k as string] = v;
    } else if (instruction === 'FROM') {
      const as = rest.findIndex((w) => w.toUpperCase() === 'AS');
      result.push({
        name: as === -1 ? '' : (rest[as + 1] as string),
        from: rest[0] as string,
        lines: [],
      });
    } else {
      result.at(-1)?.lines.push(line);
    }
  }
  return { args, stages: result };
}

/** .dockerignore as docker reads it: the last matching pattern wins, "!" re-includes. */
function ignored(path: string): boolean {
  const patterns = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  let excluded = false;
  for (const pattern of patterns) {
    const negate = pattern.startsWith('!');
    const glob = negate ? pattern.slice(1) : pattern;
    const regex = new RegExp(
      `^${glob
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*\*/g, '§§')
        .replace(/\*/g, '[^/]*')
        .replace(/§§/g, '.*')}(/.*)?$`,
    );
    if (regex.test(path)) excluded = !negate;
  }
  return excluded;
}

describe('Dockerfile', () => {
  const { args, stages: all } = stages();
  const byName = Object.fromEntries(all.map((s) => [s.name, s]));
  const runtime = all.at(-1) as Stage;

  it('is multi-stage: build (dev dependencies), deps (production only), runtime', () => {
    expect(all.map((s) => s.name)).toEqual(['build', 'deps', 'runtime']);
    expect(byName.build?.lines.join('\n')).toMatch(/npm ci(?! --omit)/);
    expect(byName.deps?.lines.join('\n')).toContain('npm ci --omit=dev');
    expect(runtime.lines.some((l) => /COPY --from=deps \/app\/node_modules/.test(l))).toBe(true);
    expect(runtime.lines.some((l) => /COPY --from=build \/src\/dist/.test(l))).toBe(true);
  });

  it('runs Node 24 LTS, pinned to a full version, on a glibc base (argon2 binaries)', () => {
    const image = args.NODE_IMAGE as string;
    expect(image).toMatch(/^node:24\.\d+\.\d+-(bookworm|trixie)-slim$/);
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a Dockerfile ARG reference, not a JS template
    for (const stage of all) expect(stage.from).toBe('${NODE_IMAGE}');
  });

  it('runs as a fixed non-root UID, exposes the proxy and ops ports, has no HEALTHCHECK', () => {
    const user = runtime.lines.find((l) => l.startsWith('USER'));
    expect(user).toBe('USER 10001:10001');
    expect(runtime.lines).toContain('EXPOSE 8080 9464');
    expect(dockerfile).not.toMatch(/^\s*HEALTHCHECK/m);
    expect(runtime.lines.find((l) => l.startsWith('ENTRYPOINT'))).toBe(
      'ENTRYPOINT ["node", "/app/dist/cli.js"]',
    );
    expect(runtime.lines.find((l) => l.startsWith('CMD'))).toBe('CMD ["serve"]');
    // The only writable place is /data (a volume), owned by that user.
    expect(runtime.lines.join('\n')).toContain('chown 10001:10001 /data');
    expect(runtime.lines).toContain('VOLUME ["/data"]');
  });

  it('every file copied from the build context exists and is not excluded by .dockerignore', () => {
    const sources = all.flatMap((s) =>
      s.lines
        .filter((l) => l.startsWith('COPY ') && !l.includes('--from='))
        .flatMap((l) => l.split(/\s+/).slice(1, -1)),
    );
    expect(sources.length).toBeGreaterThan(4);
    for (const source of sources) {
      expect(existsSync(join(ROOT, source)), source).toBe(true);
      expect(ignored(source), `${source} is excluded by .dockerignore`).toBe(false);
    }
    expect(ignored('node_modules/x')).toBe(true);
    expect(ignored('data/keygate.json')).toBe(true);
    expect(ignored('.git/config')).toBe(true);
  });

  it('what the runtime stage takes from the build stage is what `npm run build` produces', () => {
    const out = mkdtempSync(join(tmpdir(), 'keygate-dist-'));
    onTestFinished(() => rmSync(out, { recursive: true, force: true }));
    execFileSync(
      process.execPath,
      [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', out],
      {
        cwd: ROOT,
      },
    );
    expect(statSync(join(out, 'cli.js')).isFile()).toBe(true); // the ENTRYPOINT
    expect(readFileSync(join(out, 'cli.js'), 'utf8').startsWith('#!/usr/bin/env node')).toBe(true); // `keygate` on PATH
    expect(existsSync(join(out, 'admin/openapi.json'))).toBe(true); // served at runtime
    expect(existsSync(join(ROOT, 'config/kubecost.yaml'))).toBe(true); // the default config
  });
});
