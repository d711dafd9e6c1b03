import { z } from 'zod';

export const sqlValue = z.union([z.string(), z.number(), z.boolean(), z.null()]);
export const sqlParams = z
  .union([
    z.array(sqlValue).max(1000),
    z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), sqlValue),
  ])
  .optional()
  .describe(
    'Values bound to ? placeholders (array) or to :name placeholders (object); never pasted into the SQL',
  );

export const sqlText = z.string().min(1).max(100_000);

export const resultColumns = z.array(z.object({ name: z.string(), type: z.string().nullable() }));

export const readResult = z.object({
  columns: resultColumns,
  rows: z.array(z.array(z.unknown())),
  row_count: z.number().int(),
  truncated: z.boolean(),
});
