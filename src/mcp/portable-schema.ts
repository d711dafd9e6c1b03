// JSON Schema that every common client validator takes. zod renders draft 2020-12 with a
// `$schema` that draft-07 validators (Ajv's default, Inspector 1.x) cannot compile, nullable types
// as `type` arrays and "any value" as `{}`, which Inspector 2.x flags as not portable.

type Schema = Record<string, unknown>;

/** Any JSON value, spelt with keywords every validator knows (in place of `{}`). */
const ANY_JSON: Schema = {
  anyOf: ['string', 'number', 'boolean', 'null', 'array', 'object'].map((type) => ({ type })),
};

/** Keywords that say something about a value without constraining it. */
const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', 'deprecated']);
/** Keywords whose value is a schema, a list of schemas, or a map of names to schemas. */
const ONE = ['items', 'additionalProperties', 'propertyNames', 'not', 'contains'];
const MANY = ['anyOf', 'oneOf', 'allOf', 'prefixItems'];
const NAMED = ['properties', 'patternProperties', '$defs', 'definitions'];

const isSchema = (value: unknown): value is Schema =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function portable(schema: unknown): unknown {
  if (schema === true) return ANY_JSON;
  if (!isSchema(schema)) return schema;
  const out: Schema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (ONE.includes(key)) out[key] = portable(value);
    else if (MANY.includes(key) && Array.isArray(value)) out[key] = value.map(portable);
    else if (NAMED.includes(key) && isSchema(value))
      out[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, portable(v)]));
    else out[key] = value;
  }
  const annotations = Object.entries(out).filter(([key]) => ANNOTATIONS.has(key));
  const constraints = Object.entries(out).filter(([key]) => !ANNOTATIONS.has(key));
  if (constraints.length === 0) return { ...Object.fromEntries(annotations), ...ANY_JSON };
  if (!Array.isArray(out.type)) return out;
  if (out.anyOf !== undefined) throw new Error('a schema with both a type list and anyOf');
  // `type: [T, "null"]` -> `anyOf: [{ type: T, ...its constraints }, { type: "null" }]`.
  const rest = Object.fromEntries(constraints.filter(([key]) => key !== 'type'));
  return {
    ...Object.fromEntries(annotations),
    anyOf: (out.type as string[]).map((type) => (type === 'null' ? { type } : { type, ...rest })),
  };
}

/**
 * The schema rewritten for portability, meaning unchanged: no `$schema`, no `type` lists (an
 * `anyOf` of single types instead), no keyword-less schema (`{}` or `true`: any JSON value, said
 * with `anyOf`).
 */
export function portableJsonSchema(schema: Schema): Schema {
  const rest = Object.fromEntries(Object.entries(schema).filter(([key]) => key !== '$schema'));
  return portable(rest) as Schema;
}
