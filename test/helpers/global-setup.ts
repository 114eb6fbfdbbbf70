import { redisServerBinary } from './redis-server.js';

/** Fails the integration run at once, with the install command, when redis-server is missing. */
export default function setup(): void {
  redisServerBinary();
}
