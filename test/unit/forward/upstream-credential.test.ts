import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it, onTestFinished } from 'vitest';
import { ConfigError } from '../../../src/config/load.js';
import {
  FileUpstreamCredential,
  readCredentialFile,
} from '../../../src/forward/upstream-credential.js';
import { registerSecret } from '../../helpers/captured-logs.js';
import { eventually, SecretVolume } from '../../helpers/secret-volume.js';

const FIRST = 'kubecost-master-key-0001-aaaaaaaaaaaa';
const SECOND = 'kubecost-master-key-0002-bbbbbbbbbbbb';
registerSecret(FIRST, 'upstream credential (first)');
registerSecret(SECOND, 'upstream credential (second)');

function tempFile(content: string | Buffer): string {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-cred-'));
  onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'token');
  writeFileSync(path, content);
  return path;
}

function volume(value: string): SecretVolume {
  const v = new SecretVolume('token', value);
  onTestFinished(() => v.remove());
  return v;
}

function open(
  file: string,
  options: { pollMs?: number; watchDirectory?: boolean } = {},
): { credential: FileUpstreamCredential; events: Array<[string, string | undefined]> } {
  const events: Array<[string, string | undefined]> = [];
  const credential = new FileUpstreamCredential({
    header: 'X-API-KEY',
    file,
    ...options,
    onReload: (result, reason) => events.push([result, reason]),
  });
  onTestFinished(() => credential.close());
  return { credential, events };
}

describe('readCredentialFile', () => {
  it.each([
    ['no newline', FIRST],
    ['one \\n', `${FIRST}\n`],
    ['one \\r\\n', `${FIRST}\r\n`],
  ])('takes the value with %s', (_name, content) => {
    expect(readCredentialFile(tempFile(content))).toEqual({ ok: true, value: FIRST });
  });

  it.each([
    ['empty', ''],
    ['only a newline', '\n'],
    ['two trailing newlines', `${FIRST}\n\n`],
    ['a line break inside', `${FIRST}\nX-Injected: 1`],
    ['a CR inside', `${FIRST}\rX-Injected: 1`],
    ['a NUL', `${FIRST}\0`],
    ['a control character', `${FIRST}\x07`],
    ['a leading space', ` ${FIRST}`],
    ['a trailing space', `${FIRST} `],
    ['non-ASCII', `${FIRST}é`],
    ['more than 8 KiB', 'a'.repeat(8193)],
  ])('refuses a file with %s, without quoting it', (_name, content) => {
    const read = readCredentialFile(tempFile(content));
    expect(read.ok).toBe(false);
    if (!read.ok) expect(read.reason).not.toContain(FIRST);
  });

  it('refuses a missing file, naming only the error code', () => {
    const read = readCredentialFile('/nonexistent/keygate/token');
    expect(read).toEqual({ ok: false, reason: 'cannot read the file (ENOENT)' });
  });

  it('property: a value is taken only if it is a single header-safe line, and a reason never quotes the file', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          // Any bytes (as latin1 characters, one byte each).
          fc.string({ unit: fc.nat(255).map((c) => String.fromCharCode(c)), maxLength: 40 }),
          fc.stringMatching(/^[!-~]{1,30}\r?\n?$/),
          fc.stringMatching(/^[ -~\t\r\n\0]{0,30}$/),
        ),
        (content) => {
          const path = tempFile(Buffer.from(content, 'latin1'));
          const read = readCredentialFile(path);
          if (read.ok) {
            expect(read.value).toMatch(/^[!-~]([ -~\t]*[!-~])?$/);
            expect([read.value, `${read.value}\n`, `${read.value}\r\n`]).toContain(content);
          } else if (content.length >= 4) {
            expect(read.reason).not.toContain(content.replace(/\r?\n$/, ''));
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('FileUpstreamCredential', () => {
  it('a missing, empty or invalid file at start is a ConfigError naming upstream.credential.file, not the contents', () => {
    const bad = `${FIRST}\nX-Evil: 1`;
    for (const file of ['/nonexistent/keygate/token', tempFile(''), tempFile(bad)]) {
      let error: unknown;
      try {
        open(file);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(ConfigError);
      const problems = (error as ConfigError).problems;
      expect(problems.map((p) => p.path)).toEqual(['upstream.credential.file']);
      expect((error as ConfigError).message).not.toContain(FIRST);
    }
  });

  it('lower-cases the header name it sends', () => {
    const { credential } = open(tempFile(FIRST));
    expect(credential.header).toBe('x-api-key');
    expect(credential.value()).toBe(FIRST);
  });

  it('picks up a kubelet-style atomic ..data symlink swap through the directory watch', async () => {
    const v = volume(`${FIRST}\n`);
    // A poll far beyond the test's bounded wait: only the directory watch can notice in time.
    const { credential, events } = open(v.file, { pollMs: 3_600_000 });
    expect(credential.value()).toBe(FIRST);
    v.update(`${SECOND}\n`);
    await eventually(() => credential.value() === SECOND, 'the rotated value is taken', 5000);
    expect(events).toEqual([['ok', undefined]]);
  });

  it('picks up a change through the periodic re-read when no directory events arrive', async () => {
    const v = volume(FIRST);
    const { credential } = open(v.file, { pollMs: 50, watchDirectory: false });
    v.update(SECOND);
    await eventually(() => credential.value() === SECOND, 'the polled value is taken', 5000);
  });

  it('a failed re-read keeps the last good value and reports once per failure, never the value', async () => {
    const v = volume(FIRST);
    const { credential, events } = open(v.file, { pollMs: 20 });
    v.breakKey(); // `..data` now points at a directory without the key
    await eventually(() => events.length > 0, 'the failed re-read is reported', 5000);
    // Many polls later: still the last good value, and still one report.
    await new Promise((r) => setTimeout(r, 200));
    expect(credential.value()).toBe(FIRST);
    expect(events).toEqual([['error', 'cannot read the file (ENOENT)']]);

    v.update(`${SECOND}\nX-Injected: yes`); // a bad value is refused, too
    await eventually(() => events.length > 1, 'the invalid value is reported', 5000);
    expect(credential.value()).toBe(FIRST);
    expect(events[1]).toEqual(['error', 'the value contains a line break or NUL']);

    v.update(SECOND);
    await eventually(() => credential.value() === SECOND, 'recovery', 5000);
    expect(events[2]).toEqual(['ok', undefined]);
    expect(JSON.stringify(events)).not.toContain(FIRST.slice(0, 20));
  });

  it('a plain file rewritten in place is picked up too', async () => {
    const file = tempFile(FIRST);
    const { credential } = open(file, { pollMs: 3_600_000 });
    writeFileSync(file, SECOND);
    await eventually(() => credential.value() === SECOND, 'the rewritten value is taken', 5000);
  });

  it('after close nothing is read any more', async () => {
    const v = volume(FIRST);
    const { credential, events } = open(v.file, { pollMs: 20 });
    credential.close();
    v.update(SECOND);
    await new Promise((r) => setTimeout(r, 200));
    expect(credential.value()).toBe(FIRST);
    expect(events).toEqual([]);
  });
});
