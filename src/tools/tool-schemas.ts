import { z } from 'zod';
import { RESERVED_KEYS } from '../mcp/json-limits.js';

/** A key of an object the tools take: never one that reaches a prototype (also refused earlier). */
const objectKey = <T extends z.ZodString>(key: T) =>
  key.refine((name) => !RESERVED_KEYS.has(name), {
    message: `must not be ${[...RESERVED_KEYS].join(', ')}`,
  });

export const sqlValue = z.union([z.string().max(1_000_000), z.number(), z.boolean(), z.null()]);
export const sqlParams = z
  .union([
    z.array(sqlValue).max(1000),
    z.record(objectKey(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/)), sqlValue),
  ])
  .optional()
  .describe(
    'Values bound to the placeholders, never pasted into the SQL: an array for ? (SQLite) or $1, $2, ... (PostgreSQL), an object for :name (SQLite)',
  );

export const sqlText = z.string().min(1).max(100_000);
export const identifier = z.string().min(1).max(255);

export const filter = z.object({
  column: identifier,
  op: z.enum(['=', '!=', '<', '<=', '>', '>=', 'in', 'like', 'is_null']),
  value: z
    .union([sqlValue, z.array(sqlValue).min(1).max(1000)])
    .optional()
    .describe('A value; an array for "in"; for is_null nothing (IS NULL) or false (IS NOT NULL)'),
});

export const where = z
  .array(filter)
  .min(1)
  .max(50)
  .describe('Conditions, all of which must hold (AND); at least one');

export const expectedMaxRows = z
  .number()
  .int()
  .min(0)
  .max(1_000_000)
  .describe('If more rows would change, nothing changes and the error says how many');

export const dryRun = z
  .boolean()
  .default(false)
  .describe('Run, report what would change, and roll back');

/** Column -> value; a column named like a prototype key is written with `execute` instead. */
export const row = z.record(objectKey(identifier), sqlValue);

/** "N rows" with the right plural. */
export function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
