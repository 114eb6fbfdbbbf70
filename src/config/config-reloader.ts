import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ConfigReloadResult } from '../telemetry/metrics.js';
import type { ConfigWatcher, WatchTrigger } from './config-watcher.js';
import { ConfigError, parseConfig } from './load.js';
import type { ReloadPlan } from './reload-plan.js';
import type { Config } from './schema.js';

/** What starts a reload: SIGHUP, or the watcher (an event on the directory, or its poll). */
export type ReloadTrigger = 'signal' | WatchTrigger;

/** The reloader's log: the process logger in practice (pino's call shape). */
export interface ReloadLog {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
  debug(fields: Record<string, unknown>, message: string): void;
}

export interface ConfigReloaderOptions {
  /** The file serve loaded (KEYGATE_CONFIG or --config). */
  file: string;
  /** The same env overrides as at start-up (they cannot change in a running process). */
  env: NodeJS.ProcessEnv;
  /** The text the running config was loaded from: the first reload compares with it. */
  initialText: string;
  /** Applies a valid config (App.reload). */
  apply(next: Readonly<Config>): ReloadPlan;
  log: ReloadLog;
  /** keygate_config_reloads_total and the last-success gauges. */
  counted(result: ConfigReloadResult, atSeconds: number): void;
  now?: () => number;
  /** Reads the file; tests pass a failing one. */
  read?: (file: string) => string;
}

/** What one reload attempt came to; `none` = a poll or event that found nothing new. */
export type ReloadOutcome = ConfigReloadResult | 'none';

/**
 * Re-reads the config file with the same parser and env overrides as start-up, and applies it
 * or keeps the running one. Content hashes decide whether there is anything to do: an event
 * for a file whose bytes did not change (a touch, a sibling file, the poll) is no reload; a
 * SIGHUP always answers (counted "unchanged" when the bytes are the running ones). A broken
 * file is reported once per distinct content by the watcher, and again on every SIGHUP.
 */
export class ConfigReloader {
  private appliedHash: string;
  /** The last content tried, applied or refused. */
  private seenHash: string;
  private readonly now: () => number;
  private readonly read: (file: string) => string;

  constructor(private readonly options: ConfigReloaderOptions) {
    this.appliedHash = digest(options.initialText);
    this.seenHash = this.appliedHash;
    this.now = options.now ?? Date.now;
    this.read = options.read ?? ((file) => readFileSync(file, 'utf8'));
  }

  /** Starts the watcher; SIGHUP is wired by the caller (serve). */
  watch(watcher: ConfigWatcher): void {
    watcher.start((trigger) => this.reload(trigger));
  }

  reload(trigger: ReloadTrigger): ReloadOutcome {
    const { file, log } = this.options;
    let text: string;
    try {
      text = this.read(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Mid-swap, or a file being replaced: the watcher will call again; SIGHUP is an answer.
      if (trigger !== 'signal') return 'none';
      const reason = code === 'ENOENT' ? 'file not found' : String(err);
      return this.refuse(new ConfigError(file, [{ path: '', message: reason }]), trigger);
    }
    const hash = digest(text);
    if (hash === this.appliedHash) {
      this.seenHash = hash;
      if (trigger === 'poll') return 'none';
      log.debug({ config: file, trigger }, 'config reload: file unchanged, nothing to do');
      return this.count('unchanged');
    }
    if (hash === this.seenHash && trigger !== 'signal') return 'none';
    this.seenHash = hash;
    let next: Readonly<Config>;
    try {
      next = parseConfig(text, file, this.options.env);
    } catch (err) {
      if (err instanceof ConfigError) return this.refuse(err, trigger);
      throw err;
    }
    let plan: ReloadPlan;
    try {
      plan = this.options.apply(next);
    } catch (err) {
      // A bug, not a bad file; still never a crash of a serving process: the old config stays.
      log.error({ config: file, trigger, err: String(err) }, 'config reload failed');
      return this.count('invalid');
    }
    if (plan.problems.length > 0) return this.refuse(new ConfigError(file, plan.problems), trigger);
    this.appliedHash = hash;
    for (const path of plan.needsRestart) {
      log.warn(
        { config: file, path },
        `config reload: ${path} needs a restart; still using the old value`,
      );
    }
    log.info(
      { config: file, trigger, applied: plan.applied, needs_restart: plan.needsRestart },
      plan.applied.length > 0
        ? `config reloaded: ${plan.applied.join(', ')}`
        : 'config reloaded: no change that applies without a restart',
    );
    return this.count('ok');
  }

  private refuse(err: ConfigError, trigger: ReloadTrigger): ReloadOutcome {
    // The message `keygate config check` prints: the file and each problem's path.
    this.options.log.error(
      { config: err.source, trigger, problems: err.problems },
      `config reload refused, still serving the previous config: ${err.message}`,
    );
    return this.count('invalid');
  }

  private count(result: ConfigReloadResult): ConfigReloadResult {
    this.options.counted(result, this.now() / 1000);
    return result;
  }
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
