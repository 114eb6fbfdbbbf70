import { describe, expect, it } from 'vitest';
import { generateKey } from '../../../src/keys/key-format.js';
import {
  accessLogger,
  createLogger,
  maskKeys,
  scrubForLog,
} from '../../../src/telemetry/logger.js';
import { LogSink } from '../../helpers/log-sink.js';

describe('log redaction', () => {
  const key = generateKey('kg').full;
  const custom = generateKey('acme').full;

  it('masks credential headers by path and any key-shaped string anywhere', async () => {
    const sink = new LogSink();
    const logger = createLogger('debug', sink);
    logger.info(
      { headers: { authorization: `Bearer ${key}`, 'x-api-key': key, cookie: 'token=abc' } },
      'headers',
    );
    logger.info(
      { req: { headers: { authorization: 'Basic abc', 'x-api-key': 'anything' } } },
      'nested headers',
    );
    logger.info(
      { deeply: { nested: [{ note: `pasted ${key} by mistake` }] }, key },
      `message with ${custom}`,
    );
    logger.error(new Error(`failed for ${key}`), 'error with a key in its message');
    await new Promise<void>((r) => logger.flush(() => r()));
    expect(sink.raw).toHaveLength(4);
    for (const line of sink.raw) {
      expect(line).not.toContain(key);
      expect(line).not.toContain(custom);
      expect(line).not.toContain(key.slice(16, 59)); // not even the secret part
    }
    expect(sink.lines[0]).toMatchObject({
      headers: { authorization: '[REDACTED]', 'x-api-key': '[REDACTED]', cookie: '[REDACTED]' },
    });
    expect(sink.lines[1]).toMatchObject({
      req: { headers: { authorization: '[REDACTED]', 'x-api-key': '[REDACTED]' } },
    });
  });

  it('the access logger (no path redaction, for speed) still masks keys', async () => {
    const sink = new LogSink();
    const access = accessLogger(createLogger('info', sink));
    access.info({ type: 'access', path: `/model/${key}` }, 'request');
    await new Promise<void>((r) => access.flush(() => r()));
    expect(sink.raw).toHaveLength(1);
    expect(sink.raw[0]).not.toContain(key);
    expect(sink.raw[0]).toContain('[REDACTED]');
  });

  it('scrubForLog masks a key before clipping, so a key across the cap leaves no half behind', () => {
    const path = `/model/${'a'.repeat(480)}/${key}`; // the key straddles the 512-character cap
    const scrubbed = scrubForLog(path);
    expect(scrubbed.length).toBeLessThanOrEqual(513);
    // 24 characters of the key fall inside the cap: prefix, id and the start of the secret.
    expect(scrubbed).not.toContain(key.slice(0, 24));
    expect(scrubbed).toContain('[REDACTED]');
    expect(scrubForLog('/model/allocation')).toBe('/model/allocation');
  });

  it('maskKeys leaves ordinary text alone', () => {
    const text = '{"path":"/model/allocation","window":"7d","id":"kg_short"}';
    expect(maskKeys(text)).toBe(text);
    // The public prefix and id stay readable for operators; the secret half is gone.
    expect(maskKeys(`{"x":"${key}"}`)).toBe(`{"x":"${key.slice(0, 16)}[REDACTED]"}`);
  });
});
