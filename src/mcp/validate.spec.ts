import type { StandardSchemaWithJSON } from '@modelcontextprotocol/server';
import { z } from 'zod';
import { validateWith } from './validate.js';

const RunInput = z.object({
  sql: z.string().trim().min(1),
  params: z.array(z.number()).optional(),
});

/** A Standard Schema of another vendor, whose issues name their path with segment objects. */
function refusingSchema(issues: { message: string; path?: unknown[] }[]) {
  return {
    '~standard': {
      version: 1,
      vendor: 'spec',
      validate: () => ({ issues }),
      jsonSchema: { input: () => ({}), output: () => ({}) },
    },
  } as unknown as Pick<StandardSchemaWithJSON, '~standard'>;
}

describe(validateWith.name, () => {
  const sut = validateWith;

  it('gives the value as the schema outputs it', async () => {
    await expect(sut(RunInput, { sql: '  SELECT 1 ', params: [1] })).resolves.toEqual({
      ok: true,
      value: { sql: 'SELECT 1', params: [1] },
    });
  });

  it('renders each issue as `path: message`, joined with commas, as the SDK does', async () => {
    await expect(sut(RunInput, { sql: 42, params: [1, 'two'] })).resolves.toEqual({
      ok: false,
      error:
        'sql: Invalid input: expected string, received number, ' +
        'params.1: Invalid input: expected number, received string',
    });
  });

  it('renders an issue of the value itself without a path', async () => {
    await expect(sut(RunInput, undefined)).resolves.toEqual({
      ok: false,
      error: 'Invalid input: expected object, received undefined',
    });
  });

  it('reads path segments given as objects (Standard Schema PathSegment)', async () => {
    const schema = refusingSchema([
      { message: 'not a table', path: [{ key: 'tables' }, { key: 0 }, 'name'] },
      { message: 'too many', path: [] },
      { message: 'unknown' },
    ]);

    await expect(sut(schema, {})).resolves.toEqual({
      ok: false,
      error: 'tables.0.name: not a table, too many, unknown',
    });
  });

  it('waits for asynchronous checks', async () => {
    const schema = z.string().refine(async (value) => {
      await Promise.resolve();
      return value !== 'DROP';
    }, 'refused');

    await expect(sut(schema, 'DROP')).resolves.toEqual({ ok: false, error: 'refused' });
    await expect(sut(schema, 'SELECT')).resolves.toEqual({ ok: true, value: 'SELECT' });
  });
});
