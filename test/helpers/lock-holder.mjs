// A separate process that opens a file store, for lock tests: it runs the built store
// (dist/, `npm run build` first) exactly as keygate would. Arguments: STORE_PATH TTL_MS.
// Prints one JSON line per event on stdout: {event: "held"|"locked"|"lost"|"write", ...}.
// Holds the store until its stdin closes, then closes it and exits.
import { FileKeyStore } from '../../dist/store/file-key-store.js';

const [path, ttl] = process.argv.slice(2);
const say = (event, extra = {}) =>
  process.stdout.write(`${JSON.stringify({ event, pid: process.pid, ...extra })}\n`);

let store;
try {
  store = await FileKeyStore.open(path, {
    ttlMs: Number(ttl),
    onLost: (err) => say('lost', { message: err.message }),
  });
} catch (err) {
  say('locked', { name: err.name, message: err.message });
  process.exit(0);
}
say('held');

let reported = false;
const probe = setInterval(async () => {
  try {
    await store.ping();
  } catch (err) {
    if (reported) return;
    reported = true;
    say('ping', { code: err.code, message: err.message });
    try {
      await store.createAccount({
        name: `w${process.pid}`,
        role: 'reader',
        description: '',
        disabled: false,
        createdAt: 0,
        updatedAt: 0,
      });
      say('write', { ok: true });
    } catch (writeErr) {
      say('write', { ok: false, code: writeErr.code });
    }
  }
}, 25);

process.stdin.resume();
process.stdin.on('end', async () => {
  clearInterval(probe);
  await store.close();
  process.exit(0);
});
