import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeygateError } from '../../../src/errors.js';
import { parseAccountsYaml, validateAccounts } from '../../../src/keys/accounts-file.js';

/**
 * The remote CLI sends the parsed file to POST /apply as JSON, and the server validates that.
 * YAML has values JSON has not (.inf, .nan, and with `%YAML 1.1` timestamps, sets, binary):
 * JSON.stringify turns .inf and .nan into null, which the file format reads as "absent", so a
 * file that local apply refuses (`expires_at: .inf`, `scopes: .nan`) became, remotely, a key
 * that never expires with every scope of its role. The file must mean the same either way:
 * such values are refused where the file is read, naming their path.
 */
const ROLES = { member: ['read', 'write'] };
const CONTEXT = { roles: ROLES, prefix: 'kg' };
const HASH =
  '$argon2id$v=19$m=19456,t=2,p=1$LxxElJM1BZbogKI04yv4bQ$xEjTv8zPjaqzitZN5H7+i7W5aiMM/a9ZXRKANfYDiG0';

function fileWith(field: string, value: string, version = ''): string {
  return `${version}accounts:
  - name: ci
    role: member
    keys:
      - id: AbCdEf123456
        hash: "${HASH}"
        ${field}: ${value}
`;
}

function refusal(source: string): string {
  try {
    parseAccountsYaml(source);
  } catch (err) {
    expect(err).toBeInstanceOf(KeygateError);
    expect((err as KeygateError).code).toBe('bad_request');
    return (err as KeygateError).message;
  }
  throw new Error('parseAccountsYaml accepted the file');
}

/** What the server sees of a parsed file in remote mode (RemoteKeyManagement.applyAccounts). */
function overTheWire(raw: unknown): unknown {
  return JSON.parse(JSON.stringify(raw));
}

describe('accounts file: only values JSON can carry', () => {
  it('.inf and .nan are refused with their path, not sent as null (never expires, all scopes)', () => {
    for (const [field, value] of [
      ['expires_at', '.inf'],
      ['expires_at', '-.inf'],
      ['expires_at', '.nan'],
      ['scopes', '.nan'],
      ['scopes', '.inf'],
      ['scopes', '[read, .nan]'],
    ] as const) {
      expect(refusal(fileWith(field, value))).toMatch(
        new RegExp(`^accounts\\[0\\]\\.keys\\[0\\]\\.${field}(\\[1\\])?: `),
      );
    }
  });

  it('YAML 1.1 timestamps, sets and binary are refused with their path', () => {
    const v11 = '%YAML 1.1\n---\n';
    expect(refusal(fileWith('description', '2026-01-01', v11))).toMatch(
      /^accounts\[0\]\.keys\[0\]\.description: /,
    );
    expect(refusal(fileWith('scopes', '!!set {read}', v11))).toMatch(
      /^accounts\[0\]\.keys\[0\]\.scopes: /,
    );
    expect(refusal(fileWith('description', '!!binary aGVsbG8=', v11))).toMatch(
      /^accounts\[0\]\.keys\[0\]\.description: /,
    );
  });

  it('property: whatever the file, what is accepted reads the same locally and over the wire', () => {
    const scalar = fc.constantFrom(
      '.inf',
      '-.inf',
      '.nan',
      '~',
      'null',
      '0',
      '1798761600',
      '1.5',
      '"x"',
      'true',
      '[read]',
      '[]',
      '{}',
      '2026-01-01',
      '!!binary aGVsbG8=',
      '!!set {read}',
    );
    fc.assert(
      fc.property(
        fc.constantFrom('expires_at', 'scopes', 'description'),
        scalar,
        fc.boolean(),
        (field, value, v11) => {
          let raw: unknown;
          try {
            raw = parseAccountsYaml(fileWith(field, value, v11 ? '%YAML 1.1\n---\n' : ''));
          } catch (err) {
            expect((err as KeygateError).code).toBe('bad_request');
            return;
          }
          expect(overTheWire(raw)).toEqual(raw);
          const local = (() => {
            try {
              return validateAccounts(raw, CONTEXT);
            } catch (err) {
              return (err as Error).message;
            }
          })();
          const remote = (() => {
            try {
              return validateAccounts(overTheWire(raw), CONTEXT);
            } catch (err) {
              return (err as Error).message;
            }
          })();
          expect(remote).toEqual(local);
        },
      ),
    );
  });
});
