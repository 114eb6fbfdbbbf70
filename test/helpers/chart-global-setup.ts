import { assertHelm } from './helm.js';

/**
 * Fails the chart run at once, with how to get one, when there is no helm: the chart tests
 * never skip, and a missing tool should read as one clear error, not forty red tests.
 */
export default function setup(): void {
  assertHelm();
}
