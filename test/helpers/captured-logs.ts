import { KEY_PATTERN, parseKey } from '../../src/keys/key-format.js';

/**
 * Every log line any test captured in this test file's process: in-process log sinks, the
 * output of `keygate serve` children and the CLI's stderr. leak-check.ts scans them all.
 */
export const capturedLogs: string[] = [];

export function captureLog(text: string): void {
  if (text) capturedLogs.push(text);
}

/** Real keys (shape and checksum, any prefix up to the first "_") found in the captured logs. */
export function leakedKeys(): string[] {
  const found = new Set<string>();
  for (const text of capturedLogs) {
    for (const match of text.matchAll(KEY_PATTERN)) {
      const prefix = match[0].slice(0, match[0].indexOf('_'));
      if (parseKey(match[0], prefix) !== null) found.add(match[0]);
    }
  }
  return [...found];
}
