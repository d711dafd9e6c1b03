import { SqlError } from '../../src/database/sql-values.js';

/** The SqlError a call throws (fails when it throws something else or nothing). */
export function refusal(run: () => unknown): SqlError {
  try {
    run();
  } catch (error) {
    if (error instanceof SqlError) return error;
    throw error;
  }
  throw new Error('expected a SqlError, but the call succeeded');
}

/** The SqlError an async call rejects with (fails when it rejects with something else or resolves). */
export async function rejection(run: () => Promise<unknown>): Promise<SqlError> {
  try {
    await run();
  } catch (error) {
    if (error instanceof SqlError) return error;
    throw error;
  }
  throw new Error('expected a SqlError, but the call succeeded');
}
