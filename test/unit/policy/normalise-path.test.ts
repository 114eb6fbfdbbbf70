import { describe, expect, it } from 'vitest';
import { KeygateError } from '../../../src/errors.js';
import { normaliseTarget } from '../../../src/policy/normalise-path.js';

describe('normaliseTarget', () => {
  it.each([
    ['/model/allocation', '/model/allocation', ''],
    [
      '/model/allocation?window=1d&filter=cluster:"a"+namespace!:"b"',
      '/model/allocation',
      '?window=1d&filter=cluster:"a"+namespace!:"b"',
    ],
    ['/model/%61llocation', '/model/allocation', ''], // unreserved characters are decoded once
    ['/model/file%2ejson', '/model/file.json', ''], // "." decoded where it is not a dot segment
    ['/model/%7Euser', '/model/~user', ''],
    ['/model/caf%c3%a9', '/model/caf%C3%A9', ''], // other encodings kept, hex upper-cased
    ['/model/a%20b', '/model/a%20b', ''],
    ['/model/a:b@c', '/model/a:b@c', ''],
    ['/', '/', ''],
    ['/?x=1', '/', '?x=1'],
    ['/model/x?a=%2e%2e/%2F', '/model/x', '?a=%2e%2e/%2F'], // the query is not touched
  ])('%s → %s', (target, path, query) => {
    expect(normaliseTarget(target)).toEqual({ path, query });
  });

  it.each([
    '/a/../b',
    '/a/./b',
    '/a/..',
    '/a/.',
    '/a/%2e%2e/b',
    '/a/%2E%2E/b',
    '/a/.%2E/b',
    '/a/%2e',
    '/a%2fb',
    '/a%2Fb',
    '/a%5cb',
    '/a\\b',
    '//a',
    '/a//b',
    '/a/',
    '/a%00',
    '/a%0a',
    '/a%7f',
    '/a;b',
    '/a%3bb',
    '/a%23b',
    '/a%3fb',
    '/a%25b',
    '/a%2',
    '/a%g1',
    'http://x/a',
    '*',
    'a/b',
    '',
    '/a b',
    '/a"b',
    '/a<b',
    '/a|b',
    '/a{b',
  ])('refuses %j with invalid_path', (target) => {
    try {
      normaliseTarget(target);
      expect.unreachable(`${target} should be refused`);
    } catch (err) {
      expect(err).toBeInstanceOf(KeygateError);
      expect((err as KeygateError).code).toBe('invalid_path');
    }
  });
});
