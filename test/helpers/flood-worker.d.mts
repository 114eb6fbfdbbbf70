export function wrongSecretFor(id: string): string;
export function flood(url: string, victimId: string, count: number): Promise<number[]>;
