import type { StandardSchemaWithJSON } from '@modelcontextprotocol/server';
import type { z } from 'zod';

/** A schema check's outcome, issues rendered as `path: message` (as the SDK renders them). */
export async function validateWith(
  schema: Pick<StandardSchemaWithJSON, '~standard'> | z.ZodType,
  value: unknown,
): Promise<{ ok: true; value: unknown } | { ok: false; error: string }> {
  const result = await (schema['~standard'] as StandardSchemaWithJSON['~standard']).validate(value);
  if (result.issues && result.issues.length > 0)
    return {
      ok: false,
      error: result.issues
        .map((issue) => {
          const path = (issue.path ?? [])
            .map((segment) => (typeof segment === 'object' ? String(segment.key) : String(segment)))
            .join('.');
          return path ? `${path}: ${issue.message}` : issue.message;
        })
        .join(', '),
    };
  return { ok: true, value: (result as { value: unknown }).value };
}
