import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConfigError } from '../config/load.js';
import { KeygateError } from '../errors.js';

/**
 * Bearer-token check for /metrics, whose series name accounts and their traffic. The token is
 * read once at start-up; the comparison is over SHA-256 digests of equal length with
 * timingSafeEqual, so neither the token's bytes nor its length leak through timing.
 */
export class MetricsAuth {
  private readonly digest: Buffer;

  constructor(token: string) {
    this.digest = sha256(token);
  }

  /** Reads the token file (`ops.metricsTokenFile`); a missing or empty file is a config error. */
  static fromFile(path: string): MetricsAuth {
    let token: string;
    try {
      // Trailing newlines come from `echo` and editors, never from a generated token.
      token = readFileSync(path, 'utf8').replace(/[\r\n]+$/, '');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
      throw new ConfigError(path, [
        { path: 'ops.metricsTokenFile', message: `cannot read the metrics token file (${code})` },
      ]);
    }
    if (token.trim() === '') {
      throw new ConfigError(path, [
        { path: 'ops.metricsTokenFile', message: 'the metrics token file is empty' },
      ]);
    }
    return new MetricsAuth(token);
  }

  /** Throws a 401 (or 400 for two Authorization headers) unless the request carries the token. */
  check(rawHeaders: readonly string[]): void {
    let authorization: string | undefined;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      if ((rawHeaders[i] as string).toLowerCase() !== 'authorization') continue;
      if (authorization !== undefined) {
        throw new KeygateError('ambiguous_credentials', 'duplicate Authorization header');
      }
      authorization = rawHeaders[i + 1] ?? '';
    }
    if (authorization === undefined) {
      throw new KeygateError(
        'missing_credentials',
        '/metrics requires Authorization: Bearer <metrics token>',
      );
    }
    const match = /^\s*bearer\s+(\S+)\s*$/i.exec(authorization);
    if (match === null || !timingSafeEqual(sha256(match[1] as string), this.digest)) {
      throw new KeygateError('invalid_key', 'the metrics token is not valid');
    }
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
