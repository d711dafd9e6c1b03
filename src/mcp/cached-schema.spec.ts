import { z } from 'zod';
import { withCachedJsonSchema } from './cached-schema.js';
import { portableJsonSchema } from './portable-schema.js';

const Input = z.object({
  sql: z.string().min(1),
  max_rows: z.number().int().default(100),
});
const DRAFT_2020 = { target: 'draft-2020-12' } as const;
const DRAFT_07 = { target: 'draft-07' } as const;

describe(withCachedJsonSchema.name, () => {
  const sut = withCachedJsonSchema;

  it("renders the schema's JSON Schema as zod does, made portable, once per direction and target", () => {
    const zod = Input['~standard'].jsonSchema;
    const own = {
      input: (options: { target: 'draft-2020-12' | 'draft-07' }) =>
        portableJsonSchema(zod.input(options)),
      output: (options: { target: 'draft-2020-12' | 'draft-07' }) =>
        portableJsonSchema(zod.output(options)),
    };
    const { jsonSchema } = sut(Input)['~standard'];

    const input = jsonSchema.input(DRAFT_2020);

    expect(input).toEqual(own.input(DRAFT_2020));
    expect(jsonSchema.input(DRAFT_2020)).toBe(input);
    expect(jsonSchema.output(DRAFT_2020)).toEqual(own.output(DRAFT_2020));
    expect(jsonSchema.output(DRAFT_2020)).not.toEqual(input);
    expect(jsonSchema.input(DRAFT_07)).toEqual(own.input(DRAFT_07));
    expect(jsonSchema.input(DRAFT_07)).toBe(jsonSchema.input(DRAFT_07));
    expect(jsonSchema.input(DRAFT_07)).not.toBe(input);
  });

  it('keeps zod as the validator unless listOnly', async () => {
    const { validate, vendor } = sut(Input)['~standard'];

    expect(vendor).toBe('zod');
    await expect(Promise.resolve(validate({ sql: 'SELECT 1' }))).resolves.toEqual({
      value: { sql: 'SELECT 1', max_rows: 100 },
    });
    await expect(Promise.resolve(validate({ sql: 42 }))).resolves.toMatchObject({
      issues: [expect.objectContaining({ path: ['sql'] })],
    });
  });

  it('listOnly: accepts every value as it is (the pipeline checks inputs itself)', async () => {
    const { validate, jsonSchema } = sut(Input, { listOnly: true })['~standard'];
    const sent = { sql: 42, extra: true };

    const result = await Promise.resolve(validate(sent));

    expect(result).toEqual({ value: sent });
    expect(result).not.toHaveProperty('issues');
    expect(jsonSchema.input(DRAFT_2020)).toEqual(
      portableJsonSchema(Input['~standard'].jsonSchema.input(DRAFT_2020)),
    );
  });
});
