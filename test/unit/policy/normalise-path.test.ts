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
    ['/model/%E2%82%AC', '/model/%E2%82%AC', ''], // "€": valid UTF-8, NFKC-stable
    ['/model/%F0%9F%98%80', '/model/%F0%9F%98%80', ''], // a 4-byte sequence
    ['/model/%ef%bf%bd', '/model/%EF%BF%BD', ''], // U+FFFD itself is valid UTF-8
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

  // Percent-decoded bytes must be UTF-8 that no Unicode-normalising server would read as
  // another path (issue 9, item 8). Every one of these was forwarded before.
  it.each([
    ['overlong "."', '/model/%C0%AE%C0%AE/etl'],
    ['overlong "." (lower case)', '/model/%c0%ae'],
    ['overlong "/"', '/model/a%C0%AFb'],
    ['3-byte overlong "."', '/model/%E0%80%AE%E0%80%AE/etl'],
    ['4-byte overlong', '/model/%F0%80%80%AE'],
    ['lone continuation byte', '/model/%80'],
    ['lone continuation after ASCII', '/model/a%BFb'],
    ['truncated 2-byte sequence', '/model/%C3'],
    ['truncated 3-byte sequence', '/model/%E2%82'],
    ['lead byte followed by ASCII', '/model/%C3a'],
    ['lead byte split by a raw character', '/model/%E2%82x%AC'],
    ['UTF-16 surrogate', '/model/%ED%A0%80'],
    ['low surrogate', '/model/%ED%BF%BF'],
    ['above U+10FFFF', '/model/%F4%90%80%80'],
    ['invalid lead byte F5', '/model/%F5%80%80%80'],
    ['byte FF', '/model/%FF'],
    ['latin-1 "é"', '/model/caf%E9'],
    ['fullwidth solidus', '/model/a%EF%BC%8Fb'],
    ['fullwidth reverse solidus', '/model/a%EF%BC%BCb'],
    ['fullwidth full stop pair', '/model/%EF%BC%8E%EF%BC%8E/etl'],
    ['one-dot leader', '/model/%E2%80%A4%E2%80%A4/etl'],
    ['two-dot leader', '/model/%E2%80%A5/etl'],
    ['small reverse solidus', '/model/a%EF%B9%A8b'],
    ['division slash', '/model/a%E2%88%95b'],
    ['fraction slash', '/model/a%E2%81%84b'],
    ['big solidus', '/model/a%E2%A7%B8b'],
    ['set minus', '/model/a%E2%88%96b'],
    ['yen sign (best-fit "\\" in cp932)', '/model/a%C2%A5b'],
    ['no-break space (NFKC: space)', '/model/a%C2%A0b'],
    ['decomposed "é" (NFC composes it)', '/model/cafe%CC%81'],
    ['ligature "ﬁ"', '/model/%EF%AC%81le'],
    ['C1 control', '/model/a%C2%85b'],
    ['zero-width space', '/model/a%E2%80%8Bb'],
    ['right-to-left override', '/model/a%E2%80%AEb'],
    ['byte-order mark', '/model/%EF%BB%BFa'],
  ])('refuses %s (%s) with invalid_path', (_name, target) => {
    try {
      normaliseTarget(target);
      expect.unreachable(`${target} should be refused`);
    } catch (err) {
      expect(err).toBeInstanceOf(KeygateError);
      expect((err as KeygateError).code).toBe('invalid_path');
    }
  });
});
