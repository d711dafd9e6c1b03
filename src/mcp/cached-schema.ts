import type { StandardSchemaWithJSON } from '@modelcontextprotocol/server';
import type { z } from 'zod';
import { portableJsonSchema } from './portable-schema.js';

/**
 * The schema as the SDK takes it, with its JSON Schema rendering computed once (and made portable:
 * portable-schema.ts). The SDK converts a tool's schemas on every request's server instance; a
 * tool's schema never changes.
 *
 * `listOnly`: the SDK lists the schema but does not check values against it; it accepts every
 * value as it is. For input schemas, which the tool registry checks itself inside each call, so
 * that a refused input is audited like any other failed call.
 */
export function withCachedJsonSchema<T extends z.ZodType>(
  schema: T,
  { listOnly = false }: { listOnly?: boolean } = {},
): StandardSchemaWithJSON<z.input<T>, z.output<T>> {
  const standard = schema['~standard'] as unknown as StandardSchemaWithJSON<
    z.input<T>,
    z.output<T>
  >['~standard'];
  const cache = new Map<string, Record<string, unknown>>();
  const memo =
    (io: 'input' | 'output') =>
    (options: { target: string }): Record<string, unknown> => {
      const key = `${io} ${options.target}`;
      let rendered = cache.get(key);
      if (!rendered) {
        rendered = portableJsonSchema(standard.jsonSchema[io](options as never));
        cache.set(key, rendered);
      }
      return rendered;
    };
  return {
    '~standard': {
      ...standard,
      ...(listOnly && { validate: (value: unknown) => ({ value: value as z.output<T> }) }),
      jsonSchema: { input: memo('input'), output: memo('output') },
    },
  };
}
