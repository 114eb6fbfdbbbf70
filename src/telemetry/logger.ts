import { type DestinationStream, type Logger, pino } from 'pino';
import { KEY_PATTERN } from '../keys/key-format.js';

export type { Logger } from 'pino';

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
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** Masks everything shaped like a keygate key (any prefix) in a serialised log line. */
export function maskKeys(line: string): string {
  return line.includes('_') ? line.replace(KEY_PATTERN, '[REDACTED]') : line;
}

/**
 * Makes a client-supplied string safe to log: anything shaped like a key is masked, and the
 * length is capped (clients sometimes paste keys into paths or query strings by mistake).
 */
export function scrubForLog(value: string, max = 512): string {
  const clipped = value.length > max ? `${value.slice(0, max)}…` : value;
  return clipped.replace(KEY_PATTERN, '[REDACTED]');
}
