import { connect } from 'node:net';
import { request } from 'undici';
import { registerKeysInJson } from './captured-logs.js';
import { recordAdminAnswer } from './openapi-answers.js';

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: Record<string, unknown>;
}

/** An ordinary request through undici (a real socket); no URL normalisation of `path`. */
export async function send(
  baseUrl: string,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<HttpResult> {
  const res = await request(new URL(baseUrl).origin + path, {
    method: (options.method ?? 'GET') as 'GET',
    headers: options.headers ?? {},
    body: options.body ?? null,
  });
  const text = await res.body.text();
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON: tests read .text
  }
  registerKeysInJson(json); // admin create/rotate answers carry new keys: watch them for leaks
  // Admin answers are checked against the OpenAPI document after the file (openapi-check.ts).
  const method = options.method ?? 'GET';
  recordAdminAnswer({ method, target: path, status: res.statusCode, headers: res.headers, text });
  return { status: res.statusCode, headers: res.headers, text, json };
}

/**
 * Writes a request byte for byte on a fresh socket: for targets and headers an HTTP client
 * would refuse or rewrite (absolute-form, raw backslashes, duplicate headers, "_" names).
 */
export function rawHttp(port: number, head: string): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => {
      const raw = Buffer.concat(chunks).toString('latin1');
      const [headPart = '', ...bodyParts] = raw.split('\r\n\r\n');
      const [statusLine = '', ...headerLines] = headPart.split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of headerLines) {
        const colon = line.indexOf(':');
        if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      const text = bodyParts.join('\r\n\r\n');
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(text) as Record<string, unknown>;
      } catch {
        // not JSON
      }
      registerKeysInJson(json);
      const [method = '', target = ''] = head.split('\r\n', 1)[0]?.split(' ') ?? [];
      const status = Number(statusLine.split(' ')[1] ?? 0);
      recordAdminAnswer({ method, target, status, headers, text });
      resolve({ status, headers, text, json });
    });
    socket.write(head.endsWith('\r\n\r\n') ? head : `${head}\r\n\r\n`);
  });
}
