import { describe, expect, it } from 'vitest';
import {
  chooseRequestId,
  RequestHeaderBuilder,
  trustedProxyList,
} from '../../../src/forward/request-headers.js';
import type { Principal } from '../../../src/keys/principal.js';

const IDENTITY = {
  account: 'X-Keygate-Account',
  keyId: 'X-Keygate-Key-Id',
  role: 'X-Keygate-Role',
};
const principal: Principal = {
  keyId: 'KEYID0000001',
  account: 'ci',
  role: 'reader',
  scopes: new Set(['read']),
  expiresAt: 0,
};

function build(raw: string[], remote = '10.1.2.3', trusted: string[] = []) {
  const builder = new RequestHeaderBuilder(IDENTITY, trustedProxyList(trusted), trusted.length > 0);
  return builder.build({
    rawHeaders: raw,
    remoteAddress: remote,
    encrypted: false,
    requestId: 'rid',
    principal,
  });
}

describe('RequestHeaderBuilder', () => {
  it('keeps ordinary headers, drops credentials and hop-by-hop, adds identity and forwarding', () => {
    const out = build([
      'Host',
      'kg.example',
      'Accept',
      'application/json',
      'X-API-KEY',
      'kg_secret',
      'Authorization',
      'Bearer kg_secret',
      'Cookie',
      'token=t',
      'Connection',
      'keep-alive',
      'Keep-Alive',
      'timeout=5',
      'Transfer-Encoding',
      'chunked',
      'Content-Type',
      'application/json',
      'Accept',
      'text/csv',
    ]);
    expect(out).toEqual({
      accept: ['application/json', 'text/csv'],
      'content-type': 'application/json',
      'x-forwarded-for': '10.1.2.3',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'kg.example',
      'x-real-ip': '10.1.2.3',
      'x-request-id': 'rid',
      'x-keygate-account': 'ci',
      'x-keygate-key-id': 'KEYID0000001',
      'x-keygate-role': 'reader',
    });
    expect(JSON.stringify(out)).not.toContain('kg_secret');
  });

  it('drops identity headers in any case and with "_" for "-"', () => {
    const out = build([
      'x_keygate_account',
      'root',
      'X-KEYGATE-ROLE',
      'admin',
      'X_Keygate_Key_Id',
      'AAAA',
    ]);
    expect(out['x-keygate-account']).toBe('ci');
    expect(out['x-keygate-role']).toBe('reader');
    expect(out['x-keygate-key-id']).toBe('KEYID0000001');
    expect(Object.keys(out).filter((k) => k.includes('_'))).toEqual([]);
  });

  it('drops headers named in Connection, but never its own additions', () => {
    const out = build([
      'Connection',
      'X-Custom, x-keygate-account, X-Forwarded-For',
      'X-Custom',
      'v',
    ]);
    expect(out['x-custom']).toBeUndefined();
    expect(out['x-keygate-account']).toBe('ci');
    expect(out['x-forwarded-for']).toBe('10.1.2.3');
  });

  it('replaces client X-Forwarded-* from an untrusted peer', () => {
    const out = build([
      'X-Forwarded-For',
      '6.6.6.6',
      'X-Forwarded-Proto',
      'https',
      'X-Forwarded-Host',
      'evil',
      'Host',
      'good',
    ]);
    expect(out['x-forwarded-for']).toBe('10.1.2.3');
    expect(out['x-forwarded-proto']).toBe('http');
    expect(out['x-forwarded-host']).toBe('good');
  });

  it('appends to X-Forwarded-For from a trusted proxy and keeps its proto and host', () => {
    const out = build(
      [
        'X-Forwarded-For',
        '203.0.113.7, 10.0.0.9',
        'X-Forwarded-Proto',
        'https',
        'X-Forwarded-Host',
        'kubecost.example',
      ],
      '10.0.0.5',
      ['10.0.0.0/8'],
    );
    expect(out['x-forwarded-for']).toBe('203.0.113.7, 10.0.0.9, 10.0.0.5');
    expect(out['x-forwarded-proto']).toBe('https');
    expect(out['x-forwarded-host']).toBe('kubecost.example');
    expect(out['x-real-ip']).toBe('203.0.113.7');
  });

  it('normalises IPv4-mapped IPv6 peers', () => {
    expect(build([], '::ffff:10.0.0.5', ['10.0.0.0/8'])['x-forwarded-for']).toBe('10.0.0.5');
  });
});

describe('chooseRequestId', () => {
  it('keeps a safe client id and replaces an unsafe one', () => {
    expect(chooseRequestId(['X-Request-Id', 'ci-run-42.step_3'])).toBe('ci-run-42.step_3');
    expect(chooseRequestId(['X-Request-Id', 'bad id\n{"level":"fatal"}'])).toMatch(
      /^[0-9a-f-]{36}$/,
    );
    expect(chooseRequestId([])).toMatch(/^[0-9a-f-]{36}$/);
  });
});
