import type { Logger } from './logger.js';

/** One access line: every field is built by keygate itself (the path already scrubbed). */
export interface AccessEntry {
  request_id: string;
  method: string | undefined;
  /** Without the query string (filter values can be private) and scrubbed for secrets. */
  path: string;
  route: string;
  status: number;
  duration_ms: number;
  account: string | undefined;
  key_id: string | undefined;
  /** false when an expired/revoked/disabled refusal named the key without proof (no argon2). */
  key_proven: false | undefined;
  credential: string | undefined;
  decision: 'allow' | 'deny' | 'error';
  error: string | undefined;
  upstream_status: number | undefined;
  upstream_ms: number | undefined;
  remote: string;
}

/** Where the one access line per request goes; behind an interface so its cost can change alone. */
export interface AccessLog {
  write(entry: AccessEntry): void;
}

/** The access log on the process's logger, at info (the line is dropped below that level). */
export function loggerAccessLog(logger: Logger): AccessLog {
  return {
    write(entry) {
      logger.info({ type: 'access', ...entry }, 'request');
    },
  };
}
