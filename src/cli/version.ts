import { readFileSync } from 'node:fs';

/** keygate's version from package.json (two levels up from both src/cli/ and dist/cli/). */
export function version(): { version: string; node: string } {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return { version: pkg.version, node: process.version };
}
