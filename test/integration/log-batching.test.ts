import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';

const LOGGER = resolve(import.meta.dirname, '../../dist/telemetry/logger.js');

/**
 * Runs a script in a child process with keygate's stdout logger (batched: LOG_BATCH_BYTES) and
 * resolves with the stdout lines seen when `until` first holds (or the child exited).
 */
function child(script: string, until: (lines: string[]) => boolean): Promise<string[]> {
  const proc = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `import { createLogger } from ${JSON.stringify(LOGGER)};\n${script}`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  onTestFinished(() => {
    if (proc.exitCode === null) proc.kill('SIGKILL');
  });
  return new Promise((done) => {
    let out = '';
    const lines = () => out.split('\n').filter(Boolean);
    proc.stdout.on('data', (chunk) => {
      out += chunk;
      if (until(lines())) done(lines());
    });
    // 'close', not 'exit': stdout may still hold data when the process has exited.
    proc.once('close', () => done(lines()));
  });
}

describe('batched stdout log', () => {
  it("a quiet server's line appears without more traffic and without exiting", async () => {
    // One short line (far below the batch size) and then nothing for a minute: only the
    // periodic flush can bring it out while the process lives.
    const lines = await child(
      `const logger = createLogger('info');
       logger.info('lonely line');
       setTimeout(() => {}, 60_000);`,
      (l) => l.length > 0,
    );
    expect(JSON.parse(lines[0] as string)).toMatchObject({ msg: 'lonely line' });
  });

  it('lines still buffered at process.exit are written, in order', async () => {
    const lines = await child(
      `const logger = createLogger('info');
       for (let i = 0; i < 25; i++) logger.info({ i }, 'line');
       process.exit(0);`,
      () => false,
    );
    expect(lines.map((l) => JSON.parse(l).i)).toEqual(Array.from({ length: 25 }, (_, i) => i));
  });

  it('logger.flush delivers a partial batch (app shutdown awaits it)', async () => {
    const lines = await child(
      `const logger = createLogger('info');
       logger.info('before flush');
       logger.flush(() => { process.stdout.write('{"msg":"flushed"}\\n'); });
       setTimeout(() => {}, 60_000);`,
      (l) => l.some((x) => x.includes('"flushed"')),
    );
    expect(lines.map((l) => JSON.parse(l).msg)).toEqual(['before flush', 'flushed']);
  });
});
