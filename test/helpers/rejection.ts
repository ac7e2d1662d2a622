import { expect } from 'vitest';
import { ApertusError } from '../../src/core/errors.js';

/** The ApertusError a promise rejects with; fails the test when it resolves or throws anything else. */
export async function rejection(promise: Promise<unknown>): Promise<ApertusError> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ApertusError);
  return error as ApertusError;
}
