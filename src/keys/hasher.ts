/** One-way hashing of whole keys. Implementations must not block the event loop. */
export interface Hasher {
  hash(key: string): Promise<string>;
  /** The PHC string carries its own parameters, so keys hashed under older settings still verify. */
  verify(phc: string, key: string): Promise<boolean>;
  close?(): Promise<void>;
}

export interface Argon2Params {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}
