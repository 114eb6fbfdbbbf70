import { type FSWatcher, watch } from 'node:fs';
import { dirname } from 'node:path';

/** Why the watcher calls: an event on the file's directory, or the slow poll. */
export type WatchTrigger = 'watch' | 'poll';

/** Tells the reloader the config file may have changed. Tests drive their own. */
export interface ConfigWatcher {
  start(onChange: (trigger: WatchTrigger) => void): void;
  close(): void;
}

export interface DirectoryWatcherOptions {
  /** Events closer together than this are one change (a ConfigMap swap is several renames). */
  debounceMs?: number;
  /** The backstop: fs.watch misses events (network filesystems, some overlay setups). */
  pollMs?: number;
}

/**
 * Watches the config file's directory, not the file: Kubernetes updates a ConfigMap volume by
 * writing a new timestamped directory and renaming the `..data` symlink over the old one, so
 * the file's own inode never changes and a watch on it would go quiet after the first update.
 * Every event is a hint only (the reloader compares content hashes, so a touch or an unrelated
 * file is no reload); a slow poll catches what fs.watch missed. Timers and the watcher are
 * unref'd: they never keep the process alive.
 */
export class DirectoryConfigWatcher implements ConfigWatcher {
  private fsWatcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private poll: NodeJS.Timeout | undefined;
  private readonly debounceMs: number;
  private readonly pollMs: number;

  constructor(
    private readonly file: string,
    options: DirectoryWatcherOptions = {},
  ) {
    this.debounceMs = options.debounceMs ?? 250;
    this.pollMs = options.pollMs ?? 10_000;
  }

  start(onChange: (trigger: WatchTrigger) => void): void {
    const fire = () => {
      clearTimeout(this.debounce);
      this.debounce = setTimeout(() => onChange('watch'), this.debounceMs);
      this.debounce.unref();
    };
    try {
      this.fsWatcher = watch(dirname(this.file), { persistent: false }, fire);
      // A directory that goes away (or a watch the platform drops) leaves the poll.
      this.fsWatcher.on('error', () => this.stopWatching());
    } catch {
      // No directory watch here (no inotify, missing directory): the poll alone.
      this.fsWatcher = undefined;
    }
    this.poll = setInterval(() => onChange('poll'), this.pollMs);
    this.poll.unref();
  }

  close(): void {
    this.stopWatching();
    clearTimeout(this.debounce);
    clearInterval(this.poll);
  }

  private stopWatching(): void {
    this.fsWatcher?.close();
    this.fsWatcher = undefined;
  }
}
