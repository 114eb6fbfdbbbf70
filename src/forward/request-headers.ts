import { randomUUID } from 'node:crypto';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { Principal } from '../keys/principal.js';
import { hasSecretRun } from '../telemetry/mask-secrets.js';

export type OutgoingHeaders = Record<string, string | string[]>;

export interface IdentityHeaderNames {
  account: string;
  keyId: string;
  role: string;
}

// Never forwarded: hop-by-hop headers, the credential, and anything through which a client
// could claim an identity or an origin that keygate alone must assert.
// biome-ignore format: a list of names reads better packed
const ALWAYS_DROPPED = [
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'host', 'expect', 'x-api-key', 'authorization', 'proxy-authorization', 'cookie',
  'forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port',
  'x-forwarded-prefix', 'x-real-ip', 'x-original-url', 'x-original-uri', 'x-rewrite-url', 'x-request-id',
];

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Compares header names the way lenient servers do: case-insensitive, "_" read as "-". */
export function canonicalHeaderName(name: string): string {
  return name.toLowerCase().replaceAll('_', '-');
}

export function trustedProxyList(entries: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of entries) {
    const [address, bits] = entry.split('/') as [string, string | undefined];
    const family = isIPv6(address) ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(bits), family);
  }
  return list;
}

/**
 * The request id to use: the client's when it is a safe token (for tracing), else a new one.
 * A key matches the token pattern, and the id is logged, echoed and forwarded: an id holding a
 * secret-like run (see mask-secrets.ts) is replaced, never used as given.
 */
export function chooseRequestId(rawHeaders: readonly string[]): string {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] as string).toLowerCase() === 'x-request-id') {
      const value = rawHeaders[i + 1] ?? '';
      return REQUEST_ID.test(value) && !hasSecretRun(value) ? value : randomUUID();
    }
  }
  return randomUUID();
}

export interface BuildHeadersInput {
  rawHeaders: readonly string[];
  remoteAddress: string;
  encrypted: boolean;
  requestId: string;
  principal: Principal;
}

/** Builds upstream request headers from the client's, once per request, in one pass. */
export class RequestHeaderBuilder {
  private readonly dropped: ReadonlySet<string>;

  constructor(
    private readonly identity: IdentityHeaderNames,
    private readonly trusted: BlockList,
    private readonly hasTrusted: boolean,
  ) {
    this.dropped = new Set([
      ...ALWAYS_DROPPED,
      canonicalHeaderName(identity.account),
      canonicalHeaderName(identity.keyId),
      canonicalHeaderName(identity.role),
    ]);
  }

  build(input: BuildHeadersInput): OutgoingHeaders {
    const { rawHeaders } = input;
    const out: OutgoingHeaders = {};
    const connectionNamed = new Set<string>();
    for (let i = 0; i < rawHeaders.length; i += 2) {
      if ((rawHeaders[i] as string).toLowerCase() === 'connection') {
        for (const token of (rawHeaders[i + 1] ?? '').split(',')) {
          const name = canonicalHeaderName(token.trim());
          if (name !== '') connectionNamed.add(name);
        }
      }
    }
    let clientFor: string | undefined;
    let clientProto: string | undefined;
    let clientHost: string | undefined;
    let host: string | undefined;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const raw = rawHeaders[i] as string;
      const value = rawHeaders[i + 1] ?? '';
      const name = canonicalHeaderName(raw);
      if (name === 'host') host = value;
      else if (name === 'x-forwarded-for') clientFor = clientFor ? `${clientFor}, ${value}` : value;
      else if (name === 'x-forwarded-proto') clientProto ??= value;
      else if (name === 'x-forwarded-host') clientHost ??= value;
      if (this.dropped.has(name) || connectionNamed.has(name) || name.startsWith('proxy-'))
        continue;
      const lower = raw.toLowerCase();
      const existing = out[lower];
      if (existing === undefined) out[lower] = value;
      else if (Array.isArray(existing)) existing.push(value);
      else out[lower] = [existing, value];
    }

    const remote = stripMappedPrefix(input.remoteAddress);
    const trusted = this.hasTrusted && this.isTrusted(remote);
    out['x-forwarded-for'] = trusted && clientFor ? `${clientFor}, ${remote}` : remote;
    out['x-forwarded-proto'] =
      trusted && clientProto ? clientProto : input.encrypted ? 'https' : 'http';
    const forwardedHost = trusted && clientHost ? clientHost : host;
    if (forwardedHost !== undefined) out['x-forwarded-host'] = forwardedHost;
    out['x-real-ip'] =
      trusted && clientFor ? realClient(clientFor, remote, (a) => this.isTrusted(a)) : remote;
    out['x-request-id'] = input.requestId;
    out[this.identity.account.toLowerCase()] = input.principal.account;
    out[this.identity.keyId.toLowerCase()] = input.principal.keyId;
    out[this.identity.role.toLowerCase()] = input.principal.role;
    return out;
  }

  private isTrusted(address: string): boolean {
    if (isIPv4(address)) return this.trusted.check(address, 'ipv4');
    if (isIPv6(address)) return this.trusted.check(address, 'ipv6');
    return false;
  }
}

function stripMappedPrefix(address: string): string {
  return address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address;
}

/** The right-most address in the chain that is not one of our trusted proxies. */
function realClient(chain: string, remote: string, trusted: (a: string) => boolean): string {
  const hops = chain.split(',').map((h) => h.trim());
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i] as string;
    if (!trusted(hop)) return hop;
  }
  return remote;
}
