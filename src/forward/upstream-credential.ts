import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError } from '../config/load.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';

/**
 * keygate's own credential for the upstream (DESIGN §15): with SAML or OIDC on, Kubecost's
 * Aggregator demands a service key or its master API key on every request. The value lives in
 * a mounted Secret and is read from that file only: never logged, never in an error, a metric
 * or `config check` output. Nothing in this module ever puts the value into a message.
 */
export interface UpstreamCredential {
  /** The header name as sent upstream, lower case. */
  readonly header: string;
  /** The current value: the last one read successfully. */
  value(): string;
  close(): void;
}

/** A header value keygate will send: bounded, no line breaks or NUL (header injection). */
const MAX_BYTES = 8192;

export type CredentialRead = { ok: true; value: string } | { ok: false; reason: string };

/**
 * Reads and checks the credential file. The reason for a failure never quotes the file's
 * contents: the contents are the secret, however malformed.
 */
export function readCredentialFile(path: string): CredentialRead {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (err) {
    return { ok: false, reason: `cannot read the file (${errorCode(err)})` };
  }
  if (raw.length > MAX_BYTES) {
    return { ok: false, reason: `the file is larger than ${MAX_BYTES} bytes` };
  }
  // `echo`, editors and `kubectl create secret --from-file` leave one trailing newline.
  const value = raw.toString('latin1').replace(/\r?\n$/, '');
  if (value === '') return { ok: false, reason: 'the file is empty' };
  if (/[\r\n\0]/.test(value)) {
    return { ok: false, reason: 'the value contains a line break or NUL' };
  }
  // What an HTTP field value may hold (RFC 9110 §5.5), minus obs-text: printable ASCII,
  // spaces and tabs inside. Anything else undici would refuse on every request instead.
  if (!/^[\x21-\x7e](?:[\x20-\x7e\t]*[\x21-\x7e])?$/.test(value)) {
    return {
      ok: false,
      reason:
        'the value has characters a header cannot carry (control or non-ASCII characters, or surrounding spaces)',
    };
  }
  return { ok: true, value };
}

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? 'unreadable';
}

export interface CredentialFileOptions {
  header: string;
  file: string;
  /** Fallback re-read interval, for when directory events are missed. */
  pollMs?: number;
  /** Watch the directory for changes (default); off, only the poll notices them. */
  watchDirectory?: boolean;
  /** A changed value was taken (`ok`) or a re-read failed and the last good value stays. */
  onReload?: (result: 'ok' | 'error', reason?: string) => void;
}

/** By default the file is read again at least this often (Kubernetes syncs Secrets in ~1 min). */
const CREDENTIAL_POLL_MS = 10_000;
/** Directory events come in bursts (kubelet writes, links, renames, removes): one read after. */
const EVENT_SETTLE_MS = 50;

/**
 * The credential from a file, re-read when it changes. Kubernetes updates a mounted Secret
 * by writing a new timestamped directory and renaming the `..data` symlink over the old one:
 * the file keygate was told about (`token -> ..data/token`) is never written in place, so a
 * watch on the file itself sees nothing. The *directory* is watched instead, plus a cheap
 * periodic re-read for filesystems and swaps that send no events. A failed re-read keeps the
 * last good value: a half-rotated Secret must not take the upstream away.
 */
export class FileUpstreamCredential implements UpstreamCredential {
  readonly header: string;
  private current: string;
  private failing: string | undefined;
  private watcher: FSWatcher | undefined;
  private readonly poll: NodeJS.Timeout;
  private settle: NodeJS.Timeout | undefined;
  private closed = false;

  /** Reads the file now; a missing, empty or invalid file is a config error (exit 2). */
  constructor(private readonly options: CredentialFileOptions) {
    this.header = options.header.toLowerCase();
    const first = readCredentialFile(options.file);
    if (!first.ok) {
      throw new ConfigError(options.file, [
        { path: 'upstream.credential.file', message: `upstream credential: ${first.reason}` },
      ]);
    }
    this.current = first.value;
    try {
      if (options.watchDirectory === false) throw new Error('not watching');
      // Any change in the directory may be the swap (`..data`, a `..2026_…` directory) or the
      // file itself when it is a plain file replaced by an editor or `mv`: no name filter,
      // since a re-read of a small file is cheap and the settle delay merges bursts.
      this.watcher = watch(dirname(options.file), { persistent: false }, () =>
        this.scheduleReload(),
      );
      this.watcher.on('error', () => this.stopWatching());
    } catch {
      // No events here (some filesystems, or the directory is gone): the poll still works.
      this.watcher = undefined;
    }
    this.poll = setInterval(() => this.reload(), options.pollMs ?? CREDENTIAL_POLL_MS);
    this.poll.unref();
  }

  value(): string {
    return this.current;
  }

  /** Reads the file again now; keeps the last good value when that fails. */
  reload(): void {
    if (this.closed) return;
    const read = readCredentialFile(this.options.file);
    if (!read.ok) {
      // Reported once per distinct failure, not on every poll.
      if (this.failing !== read.reason) {
        this.failing = read.reason;
        this.options.onReload?.('error', read.reason);
      }
      return;
    }
    this.failing = undefined;
    if (read.value === this.current) return;
    this.current = read.value;
    this.options.onReload?.('ok');
  }

  close(): void {
    this.closed = true;
    clearInterval(this.poll);
    if (this.settle) clearTimeout(this.settle);
    this.stopWatching();
  }

  private scheduleReload(): void {
    if (this.closed || this.settle !== undefined) return;
    this.settle = setTimeout(() => {
      this.settle = undefined;
      this.reload();
    }, EVENT_SETTLE_MS);
    this.settle.unref();
  }

  private stopWatching(): void {
    this.watcher?.close();
    this.watcher = undefined;
  }
}

/**
 * The configured credential, read now (a bad file throws ConfigError), with reloads logged
 * (never the value) and counted; undefined when none is configured.
 */
export function openUpstreamCredential(
  config: { header: string; file: string } | undefined,
  logger: Logger,
  metrics: Pick<Metrics, 'credentialReloaded'>,
): UpstreamCredential | undefined {
  if (config === undefined) return undefined;
  const { header, file } = config;
  return new FileUpstreamCredential({
    header,
    file,
    onReload: (result, reason) => {
      metrics.credentialReloaded(result);
      if (result === 'ok')
        logger.info({ header, file }, 'upstream credential changed: using the new value');
      else
        logger.warn(
          { header, file, reason },
          `could not re-read the upstream credential (${reason}); still sending the last good value`,
        );
    },
  });
}
