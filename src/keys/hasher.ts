import { hash, verify } from '@node-rs/argon2';

// Algorithm.Argon2id in @node-rs/argon2 is an ambient const enum, which isolated modules cannot read.
const ARGON2ID = 2;

/** One-way hashing of whole keys. Implementations must not block the event loop. */
export interface Hasher {
  hash(key: string): Promise<string>;
  verify(phc: string, key: string): Promise<boolean>;
}

export interface Argon2Params {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

/**
 * argon2id through @node-rs/argon2, whose async calls run on libuv's thread pool, never on
 * the event loop. Callers bound how many run at once (VerifyPool), so the thread pool keeps
 * threads free for file and DNS work.
 */
export class Argon2Hasher implements Hasher {
  constructor(private readonly params: Argon2Params) {}

  hash(key: string): Promise<string> {
    return hash(key, { ...this.params, algorithm: ARGON2ID });
  }

  verify(phc: string, key: string): Promise<boolean> {
    // The PHC string carries its own parameters, so keys hashed under older settings still verify.
    return verify(phc, key);
  }
}
