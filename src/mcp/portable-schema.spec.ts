import { Ajv } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { z } from 'zod';
import { startToolHarness, type ToolHarness } from '../../test/support/tool-harness.js';
import { portableJsonSchema } from './portable-schema.js';

type Schema = Record<string, unknown>;
const ANY_JSON = {
  anyOf: [
    { type: 'string' },
    { type: 'number' },
    { type: 'boolean' },
    { type: 'null' },
    { type: 'array' },
    { type: 'object' },
  ],
};
const render = (schema: z.ZodType, io: 'input' | 'output' = 'output') =>
  portableJsonSchema(schema['~standard'].jsonSchema[io]({ target: 'draft-2020-12' }));

/** Where a schema breaks the rules portable clients need (none: []). */
function portabilityProblems(schema: unknown, path = '#'): string[] {
  if (schema === false) return []; // "nothing more": additionalProperties false
  if (typeof schema !== 'object' || schema === null) return [`${path}: not a schema object`];
  const problems: string[] = [];
  const entries = Object.entries(schema as Schema);
  if ('$schema' in (schema as Schema)) problems.push(`${path}: $schema`);
  if (Array.isArray((schema as Schema).type)) problems.push(`${path}: a type list`);
  if (entries.every(([key]) => ['title', 'description', 'default'].includes(key)))
    problems.push(`${path}: no keyword`);
  for (const [key, value] of entries) {
    if (['items', 'additionalProperties', 'propertyNames', 'not'].includes(key))
      problems.push(...portabilityProblems(value, `${path}/${key}`));
    if (['anyOf', 'oneOf', 'allOf', 'prefixItems'].includes(key))
      (value as unknown[]).forEach((item, i) =>
        problems.push(...portabilityProblems(item, `${path}/${key}/${i}`)),
      );
    if (key === 'properties')
      for (const [name, item] of Object.entries(value as Schema))
        problems.push(...portabilityProblems(item, `${path}/properties/${name}`));
  }
  return problems;
}

describe(portableJsonSchema.name, () => {
  it('drops $schema, splits a nullable type list into anyOf and spells "any value" out', () => {
    const schema = z.object({
      name: z.string().nullable().describe('A name'),
      count: z.number().int().min(0).nullable(),
      cells: z.array(z.unknown()),
      extra: z.record(z.string(), z.unknown()),
    });

    expect(render(schema)).toEqual({
      type: 'object',
      properties: {
        name: { description: 'A name', anyOf: [{ type: 'string' }, { type: 'null' }] },
        count: {
          anyOf: [
            { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
            { type: 'null' },
          ],
        },
        cells: { type: 'array', items: ANY_JSON },
        extra: {
          type: 'object',
          propertyNames: { type: 'string' },
          additionalProperties: ANY_JSON,
        },
      },
      required: ['name', 'count', 'cells', 'extra'],
      additionalProperties: false,
    });
  });

  it('accepts and refuses the same values as the schema it rewrites', () => {
    const schema = z.object({ v: z.string().nullable(), any: z.array(z.unknown()) });
    const validate = new Ajv2020().compile(render(schema));
    const samples = [
      { v: null, any: [1, 'a', null, [], {}] },
      { v: 'x', any: [] },
      { v: 1, any: [] },
      { v: 'x', any: 'no' },
      { any: [] },
    ];
    expect(samples.map((sample) => validate(sample))).toEqual(
      samples.map((sample) => schema.safeParse(sample).success),
    );
  });

  describe("every tool's schemas, as tools/list gives them", () => {
    let harness: ToolHarness;
    beforeAll(async () => {
      harness = await startToolHarness({ REPORTS_EXAMPLE: 'true' });
    });
    afterAll(() => harness.close());

    const listed = () =>
      [...harness.registry.tools].flatMap((tool) => [
        [
          `${tool.name} input`,
          tool.inputSchema['~standard'].jsonSchema.input({ target: 'draft-2020-12' }),
        ],
        [
          `${tool.name} output`,
          tool.outputSchema['~standard'].jsonSchema.output({ target: 'draft-2020-12' }),
        ],
      ]) as [string, Schema][];

    it('has no $schema, no type list and no keyword-less schema anywhere', () => {
      expect(listed().length).toBeGreaterThanOrEqual(26);
      expect(listed().flatMap(([name, schema]) => portabilityProblems(schema, name))).toEqual([]);
    });

    it("compiles in Ajv's default draft (draft-07, as Inspector 1.x) and in draft 2020-12", () => {
      // Formats (date-time) are checked by clients that load them (ajv-formats), skipped by others.
      const options = { strict: true, validateFormats: false };
      const draft7 = new Ajv(options);
      const draft2020 = new Ajv2020(options);
      const failures = listed().flatMap(([name, schema]) =>
        [draft7, draft2020].flatMap((ajv) => {
          try {
            ajv.compile(schema);
            return [];
          } catch (error) {
            return [`${name}: ${(error as Error).message}`];
          }
        }),
      );
      expect(failures).toEqual([]);
    });
  });
});
