export function forgeKey(id: string, secret: string): string;
export function wrongSecretFor(id: string): string;
export function flood(
  url: string,
  victimId: string,
  count: number,
  warmed?: unknown,
): Promise<number[]>;
export function warmPool(url: string, count: number): Promise<unknown>;
