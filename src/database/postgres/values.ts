import type pg from 'pg';

// PostgreSQL's values as JSON, truthfully. Every value arrives in PostgreSQL's text format (the
// session pins DateStyle ISO, IntervalStyle postgres, bytea_output hex, extra_float_digits 1) and
// is mapped by its type's OID, per query (pg's global type parsers are never touched):
//   bool                          -> true / false
//   int2, int4, oid               -> number (always exact)
//   int8, numeric                 -> string, exactly as PostgreSQL prints it (a JSON number would
//                                    lose digits past 2^53 or past 17 significant digits)
//   float4, float8                -> number; NaN, Infinity, -Infinity -> "NaN", "Infinity", "-Infinity"
//   json, jsonb                   -> the parsed JSON value (numbers as JavaScript reads them)
//   bytea                         -> Buffer, which RowCollector renders "base64:..." (as SQLite blobs)
//   timestamptz                   -> ISO 8601 with its offset, digits kept: 2024-05-01T12:00:00.123456+00:00
//   timestamp                     -> ISO 8601 without offset: 2024-05-01T12:00:00.123456
//   date                          -> YYYY-MM-DD
//   infinity, -infinity, BC dates -> PostgreSQL's text, unchanged
//   time, timetz, interval, text, varchar, bpchar, uuid, name, enums, money, inet, ... -> PostgreSQL's text
//   arrays of the types above     -> JSON arrays (nested for several dimensions) of the mapped
//                                    elements; a bytea element is the string "base64:..." itself
//   any other array               -> PostgreSQL's text ("{...}")
// A value whose text is not in the expected form (a setting changed within the statement itself)
// is returned as PostgreSQL's text rather than guessed at.

type Parse = (text: string) => unknown;

const SPECIAL_FLOATS = new Set(['NaN', 'Infinity', '-Infinity']);
const TIMESTAMPTZ =
  /^(\d{4,}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d)(?::(\d\d))?(?::(\d\d))?$/;
const TIMESTAMP = /^(\d{4,}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)$/;

const text: Parse = (value) => value;
const integer: Parse = (value) => Number(value);
const float: Parse = (value) => (SPECIAL_FLOATS.has(value) ? value : Number(value));
const bool: Parse = (value) => value === 't';
const json: Parse = (value) => JSON.parse(value) as unknown;

function timestamptz(value: string): string {
  const m = TIMESTAMPTZ.exec(value);
  return m ? `${m[1]}T${m[2]}${m[3]}:${m[4] ?? '00'}${m[5] ? `:${m[5]}` : ''}` : value;
}

function timestamp(value: string): string {
  const m = TIMESTAMP.exec(value);
  return m ? `${m[1]}T${m[2]}` : value;
}

/** bytea in the hex format (`\x0102`), or the escape format should a statement switch to it. */
function bytea(value: string): Buffer {
  if (value.startsWith('\\x')) return Buffer.from(value.slice(2), 'hex');
  const bytes: number[] = [];
  let i = 0;
  while (i < value.length) {
    if (value[i] !== '\\') {
      bytes.push(value.charCodeAt(i));
      i += 1;
    } else if (value[i + 1] === '\\') {
      bytes.push(0x5c);
      i += 2;
    } else {
      bytes.push(parseInt(value.slice(i + 1, i + 4), 8));
      i += 4;
    }
  }
  return Buffer.from(bytes);
}

/**
 * An array in PostgreSQL's text format (`{1,2}`, `{{"a b",NULL}}`, `[0:1]={1,2}`), its elements
 * mapped; throws on anything else.
 */
export function parseArray(value: string, element: Parse): unknown[] {
  let i = value.startsWith('[') ? value.indexOf('=') + 1 : 0;
  const peek = () => {
    if (i >= value.length) throw new Error(`not an array literal: ${value.slice(0, 40)}`);
    return value[i];
  };
  const expect = (c: string) => {
    if (peek() !== c) throw new Error(`not an array literal: ${value.slice(0, 40)}`);
    i++;
  };
  const item = (): unknown => {
    if (peek() === '{') return list();
    if (peek() === '"') {
      let quoted = '';
      for (i++; peek() !== '"'; i++) {
        if (value[i] === '\\') i++;
        quoted += peek();
      }
      i++;
      return element(quoted);
    }
    const start = i;
    while (peek() !== ',' && peek() !== '}') i++;
    const bare = value.slice(start, i);
    return bare === 'NULL' ? null : element(bare);
  };
  const list = (): unknown[] => {
    expect('{');
    const items: unknown[] = [];
    if (peek() !== '}') {
      items.push(item());
      while (peek() === ',') {
        i++;
        items.push(item());
      }
    }
    expect('}');
    return items;
  };
  const items = list();
  if (i !== value.length) throw new Error(`not an array literal: ${value.slice(0, 40)}`);
  return items;
}

/** Parsers of the element types, by OID, and their array types' OIDs. */
const ELEMENTS: [oid: number, arrayOid: number, parse: Parse][] = [
  [16, 1000, bool],
  [17, 1001, bytea],
  [19, 1003, text], // name
  [20, 1016, text], // int8
  [21, 1005, integer],
  [23, 1007, integer],
  [25, 1009, text],
  [26, 1028, integer], // oid
  [114, 199, json],
  [700, 1021, float],
  [701, 1022, float],
  [1042, 1014, text], // bpchar
  [1043, 1015, text], // varchar
  [1082, 1182, text], // date
  [1083, 1183, text], // time
  [1114, 1115, timestamp],
  [1184, 1185, timestamptz],
  [1186, 1187, text], // interval
  [1266, 1270, text], // timetz
  [1700, 1231, text], // numeric
  [2950, 2951, text], // uuid
  [3802, 3807, json],
];

/** RowCollector marks a Buffer cell, not a Buffer inside an array. */
const byteaElement: Parse = (value) => `base64:${bytea(value).toString('base64')}`;

const PARSERS = new Map<number, Parse>();
for (const [oid, arrayOid, parse] of ELEMENTS) {
  PARSERS.set(oid, parse);
  const element = parse === bytea ? byteaElement : parse;
  PARSERS.set(arrayOid, (value) => {
    try {
      return parseArray(value, element);
    } catch (error) {
      if (error instanceof SyntaxError) throw error; // a json element that is not JSON: a bug
      return value;
    }
  });
}

/**
 * Type parsers for one query's results (pg's `types` option). While `skipping()` is true, values
 * are not parsed at all (null): rows that are read only to reach the end of a statement.
 */
export function resultTypes(skipping: () => boolean = () => false): pg.CustomTypesConfig {
  const getTypeParser = (oid: number) => {
    const parse = PARSERS.get(oid) ?? text;
    return (value: string) => (skipping() ? null : parse(value));
  };
  return { getTypeParser };
}

/** Built-in types keep their OIDs and names; others (OID >= 16384) are looked up every time. */
const FIRST_NORMAL_OID = 16384;
const BUILTIN_NAMES_CACHED = 1024;
const builtinNames = new Map<number, string>();

/** The names of types by OID (`int8`, `timestamptz`, `text[]`), from pg_type; null if none. */
export async function typeNames(
  client: pg.ClientBase,
  oids: number[],
): Promise<Map<number, string | null>> {
  const names = new Map<number, string | null>();
  const missing = [...new Set(oids)].filter((oid) => {
    const known = builtinNames.get(oid);
    if (known !== undefined) names.set(oid, known);
    return known === undefined;
  });
  if (missing.length === 0) return names;
  const { rows } = await client.query<{ oid: number; name: string }>({
    text: `SELECT t.oid, CASE WHEN t.typcategory = 'A' AND e.oid IS NOT NULL THEN e.typname || '[]' ELSE t.typname END AS name
           FROM pg_catalog.pg_type t LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem
           WHERE t.oid = ANY($1::pg_catalog.oid[])`,
    values: [missing],
    types: resultTypes(),
  });
  for (const { oid, name } of rows) {
    names.set(oid, name);
    if (oid < FIRST_NORMAL_OID && builtinNames.size < BUILTIN_NAMES_CACHED)
      builtinNames.set(oid, name);
  }
  for (const oid of missing) if (!names.has(oid)) names.set(oid, null);
  return names;
}
