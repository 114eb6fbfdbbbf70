import { type DestinationStream, type Logger, pino } from 'pino';
import { BatchedLineStream } from './batched-stream.js';
import { maskSecretRuns } from './mask-secrets.js';

export type { Logger } from 'pino';

const MAX_LOG_BUFFER_BYTES = 16 * 1024 * 1024;
/** Lines reach stdout in batches of about this many characters (see batched-stream.ts). */
export const LOG_BATCH_CHARS = 8 * 1024;
/** A quiet server's buffered lines still reach stdout within this long (an unref'd timer). */
export const LOG_FLUSH_MS = 100;

/** Field paths that may hold credentials if someone ever logs headers or bodies. */
const REDACT_PATHS = [
  'key',
  '*.key',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers.cookie',
  '*.headers.authorization',
  '*.headers["x-api-key"]',
  '*.headers.cookie',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'keygate' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      formatters: { level: (label) => ({ level: label }) },
      // Last line of defence: whatever field a key ended up in, it never reaches the stream.
      hooks: { streamWrite: maskKeys },
    },
    // Asynchronous, and bounded: if stdout stalls, lines past MAX_LOG_BUFFER_BYTES are dropped
    // instead of growing the heap without limit (sonic-boom's default). Batched: see
    // batched-stream.ts; what is still buffered at exit is written synchronously, and app
    // shutdown awaits logger.flush().
    destination ?? stdoutDestination(),
  );
}

/**
 * stdout as keygate writes it: asynchronous, batched, bounded, flushed every LOG_FLUSH_MS.
 * The composition root (serve.ts) makes one logger on it for the whole process, so every line
 * shares one stream and keeps its order; nothing here holds it globally.
 */
function stdoutDestination(): DestinationStream {
  return new BatchedLineStream(
    // minLength 1, not 0: each batch is still written at once, but sonic-boom's flush(cb) then
    // waits for the write in flight ('drain') instead of calling back at once, so shutdown's
    // awaited logger.flush() means the lines are out (minLength 0 made it a no-op).
    pino.destination({ dest: 1, sync: false, minLength: 1, maxLength: MAX_LOG_BUFFER_BYTES }),
    LOG_BATCH_CHARS,
    LOG_FLUSH_MS,
  );
}

/**
 * The access-log logger: the same stream and key masking, without path redaction. Access lines
 * carry only fields keygate builds itself (never headers; the path scrubbed), and redaction
 * was the most expensive part of logging a request (about 12 µs of 16 per line, measured).
 */
export function accessLogger(logger: Logger): Logger {
  return logger.child({}, { redact: { paths: [] } });
}

/**
 * Masks every secret-like run (see mask-secrets.ts) in a serialised log line: a key in any
 * field, any surroundings, raw or percent-encoded. JSON escaping only adds `\\` and other run
 * characters, so it can only lengthen a run, never split a secret; a run that ends in the
 * backslash of an escaped quote keeps that backslash (see maskSecretRuns), so the line stays
 * well-formed JSON.
 */
export function maskKeys(line: string): string {
  return maskSecretRuns(line);
}

/**
 * Caps a client-supplied string for the log. Secret-like runs are masked *before* clipping: a
 * key cut in half by the cap would be too short to be recognised, and its first half logged.
 */
export function scrubForLog(value: string, max = 512): string {
  const masked = maskSecretRuns(value);
  return masked.length > max ? `${masked.slice(0, max)}…` : masked;
}
