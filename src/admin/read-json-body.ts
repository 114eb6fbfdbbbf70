import type { IncomingMessage } from 'node:http';
import type { z } from 'zod';
import { formatPath } from '../config/load.js';
import { KeygateError } from '../errors.js';
import { duplicateKeyPath, forbiddenKeyPath } from './json-key-checks.js';

const MAX_ADMIN_BODY_BYTES = 16 * 1024;

/**
 * Reads and validates a JSON body: 415 unless it is JSON, 413 past the limit (checked before
 * and while reading), 400 naming the field for anything the schema refuses, for a member named
 * like an Object property (`__proto__`, `constructor`, `prototype`) at any depth, and for a
 * member repeated within one object. An absent body
 * counts as `{}` so optional-only bodies (rotate) may be omitted.
 */
export async function readJsonBody<T extends z.ZodType>(
  req: IncomingMessage,
  schema: T,
  maxBytes = MAX_ADMIN_BODY_BYTES,
): Promise<z.output<T>> {
  const declared = Number(req.headers['content-length'] ?? 0);
  const hasBody = req.headers['transfer-encoding'] !== undefined || declared > 0;
  let value: unknown = {};
  if (hasBody) {
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
    if (type !== 'application/json') {
      throw new KeygateError(
        'unsupported_media_type',
        'the body must be JSON (content-type: application/json)',
      );
    }
    if (declared > maxBytes) throw tooLarge(maxBytes);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > maxBytes) throw tooLarge(maxBytes);
      chunks.push(chunk as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    try {
      value = JSON.parse(text);
    } catch {
      throw new KeygateError('bad_request', 'body: malformed JSON');
    }
    const forbidden = forbiddenKeyPath(value);
    if (forbidden !== undefined) {
      throw new KeygateError('bad_request', `${formatPath(forbidden)}: unknown field`);
    }
    const duplicate = duplicateKeyPath(text);
    if (duplicate !== undefined) {
      throw new KeygateError('bad_request', `${formatPath(duplicate)}: duplicate field`);
    }
  }
  const result = schema.safeParse(value);
  if (!result.success) {
    const problems = result.error.issues.flatMap((issue) =>
      issue.code === 'unrecognized_keys'
        ? issue.keys.map((key) => `${formatPath([...issue.path, key])}: unknown field`)
        : [`${formatPath(issue.path) || 'body'}: ${issue.message}`],
    );
    throw new KeygateError('bad_request', problems.join('; '));
  }
  return result.data;
}

function tooLarge(maxBytes: number): KeygateError {
  return new KeygateError('payload_too_large', `the body must be at most ${maxBytes} bytes`);
}
