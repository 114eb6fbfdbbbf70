import { type DestinationStream, type Logger, pino } from 'pino';
import { KEY_PATTERN } from '../keys/key-format.js';

export type { Logger } from 'pino';

const MAX_LOG_BUFFER_BYTES = 16 * 1024 * 1024;

/** Field paths that may hold credentials if someone ever logs headers or bodies. */
export const REDACT_PATHS = [
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
    // instead of growing the heap without limit (sonic-boom's default).
    destination ?? pino.destination({ dest: 1, sync: false, maxLength: MAX_LOG_BUFFER_BYTES }),
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

/** Masks everything shaped like a keygate key (any prefix) in a serialised log line. */
export function maskKeys(line: string): string {
  return line.includes('_') ? line.replace(KEY_PATTERN, '[REDACTED]') : line;
}

/**
 * Caps a client-supplied string for the log. Keys are masked *before* clipping: a key cut in
 * half by the cap would no longer match the pattern, and its first half would be logged.
 * Strings within the cap are left alone, since maskKeys masks every line as it is written.
 */
export function scrubForLog(value: string, max = 512): string {
  if (value.length <= max) return value;
  const masked = value.replace(KEY_PATTERN, '[REDACTED]');
  return masked.length > max ? `${masked.slice(0, max)}…` : masked;
}
