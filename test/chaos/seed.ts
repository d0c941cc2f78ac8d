// The seed of a chaos run: given (CHAOS_SEED, --seed) or drawn, and always printed so that a run can be replayed.

import { randomInt } from 'node:crypto';

export function chaosSeed(given: string | undefined): number {
  if (given === undefined || given === '') return randomInt(1, 2 ** 31);
  const seed = Number(given);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`seed ${JSON.stringify(given)} is not a non-negative integer`);
  return seed;
}
