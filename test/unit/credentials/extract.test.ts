import { describe, expect, it } from 'vitest';
import { extractCredential } from '../../../src/credentials/extract.js';
import { KeygateError } from '../../../src/errors.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('extractCredential', () => {
  it.each([
    ['X-API-KEY', ['X-API-KEY', 'k1'], 'x-api-key', 'k1'],
    ['x-api-key lower case, padded', ['x-api-key', '  k1  '], 'x-api-key', 'k1'],
    ['Bearer', ['Authorization', 'Bearer k2'], 'bearer', 'k2'],
    ['BEARER upper case', ['authorization', 'BEARER k2'], 'bearer', 'k2'],
    ['Basic key:password', ['Authorization', `Basic ${b64('k3:ignored')}`], 'basic', 'k3'],
    ['Basic key: (empty password)', ['Authorization', `Basic ${b64('k3:')}`], 'basic', 'k3'],
    ['Basic key (no colon)', ['Authorization', `Basic ${b64('k3')}`], 'basic', 'k3'],
  ])('accepts %s', (_name, raw, source, key) => {
    expect(extractCredential(raw as string[])).toEqual({ source, key });
  });

  it.each([
    ['no credential', [], 'missing_credentials'],
    ['empty X-API-KEY', ['X-API-KEY', ''], 'missing_credentials'],
    ['empty Bearer', ['Authorization', 'Bearer '], 'missing_credentials'],
    ['Basic with empty user', ['Authorization', `Basic ${b64(':pw')}`], 'missing_credentials'],
    ['unknown scheme', ['Authorization', 'Digest abc'], 'missing_credentials'],
    ['two X-API-KEY', ['X-API-KEY', 'a', 'x-api-key', 'a'], 'ambiguous_credentials'],
    [
      'two Authorization',
      ['Authorization', 'Bearer a', 'Authorization', 'Bearer a'],
      'ambiguous_credentials',
    ],
    [
      'X-API-KEY and Bearer',
      ['X-API-KEY', 'a', 'Authorization', 'Bearer a'],
      'ambiguous_credentials',
    ],
    [
      'X-API-KEY and Basic',
      ['Authorization', `Basic ${b64('a:')}`, 'X-API-KEY', 'a'],
      'ambiguous_credentials',
    ],
    ['X_API_KEY alone', ['X_API_KEY', 'a'], 'ambiguous_credentials'],
    ['x_api_key lower case alone', ['x_api_key', 'a'], 'ambiguous_credentials'],
    ['X-API_KEY mixed', ['X-API_KEY', 'a'], 'ambiguous_credentials'],
    ['X-API-KEY and X_API_KEY', ['X-API-KEY', 'a', 'X_API_KEY', 'b'], 'ambiguous_credentials'],
    ['X_API_KEY before X-API-KEY', ['x_api_key', 'b', 'X-API-KEY', 'a'], 'ambiguous_credentials'],
    [
      'Bearer and X_API_KEY',
      ['Authorization', 'Bearer a', 'X_Api_Key', 'b'],
      'ambiguous_credentials',
    ],
  ])('refuses %s', (_name, raw, code) => {
    try {
      extractCredential(raw as string[]);
      expect.unreachable('should have thrown');
    } catch (err) {
      expect(err).toBeInstanceOf(KeygateError);
      expect((err as KeygateError).code).toBe(code);
    }
  });

  it('ignores unrelated headers that merely contain the words', () => {
    expect(() => extractCredential(['X-API-KEY-HINT', 'x', 'Authorization-Info', 'y'])).toThrow(
      /API key is required/,
    );
  });
});
