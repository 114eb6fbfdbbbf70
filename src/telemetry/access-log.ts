import { pino } from 'pino';
import { accessLogger, type Logger } from './logger.js';
import { maskSecretRuns } from './mask-secrets.js';

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

/**
 * The access log through pino itself: the reference the hand-built line is tested against, and
 * the fallback for destinations that need pino's per-line metadata (multistream).
 */
export function loggerAccessLog(logger: Logger): AccessLog {
  const child = accessLogger(logger);
  return {
    write(entry) {
      child.info({ type: 'access', ...entry }, 'request');
    },
  };
}

/**
 * The access log as one hand-built JSON line per request, written to the logger's own stream
 * (so it stays in order with every other line) at info. It writes exactly what pino wrote —
 * same fields, same order, `undefined` fields left out, non-finite numbers as null — without
 * pino's generic serialiser, which cost more than the rest of the line. Client-influenced
 * strings (request_id, method, path, remote) go through JSON.stringify, which escapes quotes,
 * backslashes, control characters and lone surrogates. The whole line is then masked by
 * maskSecretRuns, like every pino line (the logger's streamWrite hook), so a key in any field
 * never reaches the stream.
 */
export function jsonAccessLog(logger: Logger): AccessLog {
  const stream = (logger as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as
    | { write(line: string): unknown; [key: symbol]: unknown }
    | undefined;
  // pino.multistream needs the level of each line passed beside it: let pino do that.
  if (stream === undefined || stream[pino.symbols.needsMetadataGsym] === true) {
    return loggerAccessLog(logger);
  }
  return {
    write(e) {
      // The level can be changed at run time; below info the line is dropped, as with pino.
      if (!logger.isLevelEnabled('info')) return;
      let line = `{"level":"info","time":"${isoNow()}","service":"keygate","type":"access","request_id":${JSON.stringify(e.request_id)}`;
      if (e.method !== undefined) line += `,"method":${JSON.stringify(e.method)}`;
      line += `,"path":${JSON.stringify(e.path)},"route":${JSON.stringify(e.route)},"status":${num(e.status)},"duration_ms":${num(e.duration_ms)}`;
      if (e.account !== undefined) line += `,"account":${JSON.stringify(e.account)}`;
      if (e.key_id !== undefined) line += `,"key_id":${JSON.stringify(e.key_id)}`;
      if (e.key_proven !== undefined) line += ',"key_proven":false';
      if (e.credential !== undefined) line += `,"credential":${JSON.stringify(e.credential)}`;
      line += `,"decision":${JSON.stringify(e.decision)}`;
      if (e.error !== undefined) line += `,"error":${JSON.stringify(e.error)}`;
      if (e.upstream_status !== undefined) line += `,"upstream_status":${num(e.upstream_status)}`;
      if (e.upstream_ms !== undefined) line += `,"upstream_ms":${num(e.upstream_ms)}`;
      line += `,"remote":${JSON.stringify(e.remote)},"msg":"request"}\n`;
      stream.write(maskSecretRuns(line));
    },
  };
}

/** As pino writes a number: JSON has no NaN or Infinity. */
function num(n: number): string {
  return Number.isFinite(n) ? String(n) : 'null';
}

// pino's isoTime builds a Date and an ISO string per line; at thousands of lines a second
// most lines share their millisecond with the one before.
let lastMs = -1;
let lastIso = '';
function isoNow(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastIso = new Date(now).toISOString();
  }
  return lastIso;
}
