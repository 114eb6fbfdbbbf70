import { randomUUID } from 'node:crypto';
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { Principal } from '../keys/principal.js';
import { canonicalHeaderName } from '../shared/header-name.js';
import { hasSecretRun } from '../telemetry/mask-secrets.js';
import { HeaderDropRule } from './header-families.js';
import type { UpstreamCredential } from './upstream-credential.js';

/**
 * Outgoing headers as a flat list, `[name, value, name, value, ...]`: it keeps duplicates and
 * their order, and no client-chosen name ever becomes an object key (a header named
 * `__proto__`, `constructor` or `0` once turned a plain object into something undici iterated
 * as the client's own list of headers).
 */
export type FlatHeaders = string[];

export interface IdentityHeaderNames {
  account: string;
  keyId: string;
  role: string;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

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
  private readonly dropRule: HeaderDropRule;

  /**
   * @param dropHeaders `upstream.dropHeaders`: more names, or prefixes ending in "*"
   * @param credential keygate's own upstream credential (DESIGN §15): the client's copies of
   *   its header are dropped like identity headers, and keygate's value is sent, exactly once
   */
  constructor(
    private readonly identity: IdentityHeaderNames,
    private readonly trusted: BlockList,
    private readonly hasTrusted: boolean,
    dropHeaders: readonly string[] = [],
    private readonly credential?: UpstreamCredential,
  ) {
    const keygateSets = [identity.account, identity.keyId, identity.role];
    if (credential !== undefined) keygateSets.push(credential.header);
    this.dropRule = new HeaderDropRule(keygateSets, dropHeaders);
  }

  build(input: BuildHeadersInput): FlatHeaders {
    const { rawHeaders } = input;
    const connectionNamed = new Set<string>();
    for (let i = 0; i < rawHeaders.length; i += 2) {
      if ((rawHeaders[i] as string).toLowerCase() === 'connection') {
        for (const token of (rawHeaders[i + 1] ?? '').split(',')) {
          const name = canonicalHeaderName(token.trim());
          if (name !== '') connectionNamed.add(name);
        }
      }
    }
    const out: FlatHeaders = [];
    let clientFor: string | undefined;
    let clientProto: string | undefined;
    let clientHost: string | undefined;
    let host: string | undefined;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      const lower = (rawHeaders[i] as string).toLowerCase();
      const value = rawHeaders[i + 1] ?? '';
      // A trusted proxy writes these names exactly; "_" variants are the client's and dropped.
      if (lower === 'host') host ??= value;
      else if (lower === 'x-forwarded-for')
        clientFor = clientFor ? `${clientFor}, ${value}` : value;
      else if (lower === 'x-forwarded-proto') clientProto ??= value;
      else if (lower === 'x-forwarded-host') clientHost ??= value;
      const name = canonicalHeaderName(lower);
      if (this.dropRule.drops(name) || connectionNamed.has(name)) continue;
      out.push(lower, value);
    }

    // keygate's own, appended after every client header was filtered: exactly one of each.
    const remote = stripMappedPrefix(input.remoteAddress);
    const trusted = this.hasTrusted && this.isTrusted(remote);
    out.push('x-forwarded-for', trusted && clientFor ? `${clientFor}, ${remote}` : remote);
    out.push(
      'x-forwarded-proto',
      trusted && clientProto ? clientProto : input.encrypted ? 'https' : 'http',
    );
    const forwardedHost = trusted && clientHost ? clientHost : host;
    if (forwardedHost !== undefined) out.push('x-forwarded-host', forwardedHost);
    out.push(
      'x-real-ip',
      trusted && clientFor ? realClient(clientFor, remote, (a) => this.isTrusted(a)) : remote,
    );
    out.push('x-request-id', input.requestId);
    out.push(this.identity.account.toLowerCase(), input.principal.account);
    out.push(this.identity.keyId.toLowerCase(), input.principal.keyId);
    out.push(this.identity.role.toLowerCase(), input.principal.role);
    if (this.credential !== undefined) out.push(this.credential.header, this.credential.value());
    return out;
  }

  /**
   * The address a request comes from, for per-client budgets: the peer, or — when the peer is
   * one of `trustedProxies` — the right-most untrusted hop of its X-Forwarded-For (what
   * X-Real-IP carries upstream). Behind an ingress every peer is the ingress: counting peers
   * would let one caller spend everyone's budget. Never a client-chosen non-address.
   */
  clientAddress(rawHeaders: readonly string[], remoteAddress: string): string {
    const remote = stripMappedPrefix(remoteAddress);
    if (!this.hasTrusted || !this.isTrusted(remote)) return remote;
    let chain: string | undefined;
    for (let i = 0; i < rawHeaders.length; i += 2) {
      if ((rawHeaders[i] as string).toLowerCase() === 'x-forwarded-for') {
        const value = rawHeaders[i + 1] ?? '';
        chain = chain ? `${chain}, ${value}` : value;
      }
    }
    if (chain === undefined) return remote;
    const client = realClient(chain, remote, (a) => this.isTrusted(a));
    return isIPv4(client) || isIPv6(client) ? client : remote;
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
