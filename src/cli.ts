#!/usr/bin/env node
// The `keygate` bin (package.json, the image's entrypoint): everything else is in cli/.
import { main } from './cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    // -1: `serve` keeps running; it exits the process itself on a signal.
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  },
);
