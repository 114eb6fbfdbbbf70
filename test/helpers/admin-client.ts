import openapi from '../../src/admin/openapi.json' with { type: 'json' };
import { type HttpResult, send } from './http.js';

/** A tiny client for keygate's admin API, as an operator's script would use it. */
export function adminClient(baseUrl: string, key: string) {
  const call = (
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) =>
    send(baseUrl, `/_keygate/v1${path}`, {
      method,
      headers: {
        'x-api-key': key,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(body !== undefined
        ? { body: typeof body === 'string' ? body : JSON.stringify(body) }
        : {}),
    });
  return {
    call,
    createAccount: (name: string, role: string, description?: string) =>
      call('POST', '/service-accounts', {
        name,
        role,
        ...(description !== undefined ? { description } : {}),
      }),
    createKey: (account: string, body: Record<string, unknown>) =>
      call('POST', `/service-accounts/${account}/api-keys`, body),
    listKeys: (account: string) => call('GET', `/service-accounts/${account}/api-keys`),
    revoke: (account: string, id: string) =>
      call('DELETE', `/service-accounts/${account}/api-keys/${id}`),
    rotate: (account: string, id: string, body?: Record<string, unknown>) =>
      call('POST', `/service-accounts/${account}/api-keys/${id}/rotate`, body),
  };
}

type Schema = { required?: string[]; properties?: Record<string, unknown> };

/** Asserts a response body has exactly the fields its OpenAPI schema lists. */
export function fieldsOf(schemaName: keyof typeof openapi.components.schemas): string[] {
  const schema = openapi.components.schemas[schemaName] as Schema;
  return Object.keys(schema.properties ?? {}).sort();
}

export function bodyFields(res: HttpResult): string[] {
  return Object.keys(res.json).sort();
}
