import type pg from 'pg';
import type {
  ForeignKeyDescription,
  ListTablesRequest,
  TableDescription,
  TableList,
  TableType,
} from '../engine.js';
import { SqlError } from '../sql-values.js';
import type { Deadline } from './deadline.js';
import { readTransaction } from './session.js';
import { resultTypes } from './values.js';

// The catalog as the tools see it, from pg_catalog: tables (r, p, f) and views (v, m) in every
// schema but PostgreSQL's own and temporary ones, that the role may use (USAGE on the schema)
// and read (SELECT on the relation), so ScopeDB's own schema, where the role has no privilege,
// never shows. A relation is named as search_path sees it: `name` when visible, else
// `schema.name`. Names are matched exactly against the catalog, never parsed by PostgreSQL
// (no to_regclass on caller text), and quoted by the driver only after they matched.

/** The relations the role may name, with the name the tools show. */
const RELATIONS = `
  SELECT c.oid, n.nspname AS schema, c.relname AS name, c.relkind::text AS relkind, c.reltuples,
         pg_catalog.pg_table_is_visible(c.oid) AS visible,
         CASE WHEN pg_catalog.pg_table_is_visible(c.oid) THEN c.relname
              ELSE n.nspname || '.' || c.relname END AS shown
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p', 'f', 'v', 'm') AND c.relpersistence <> 't'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND pg_catalog.left(n.nspname, 8) <> 'pg_toast' AND pg_catalog.left(n.nspname, 7) <> 'pg_temp'
    AND pg_catalog.has_schema_privilege(n.oid, 'USAGE')
    AND pg_catalog.has_table_privilege(c.oid, 'SELECT')`;

/** The name the tools show for the relation whose OID the SQL expression gives. */
function shownName(oid: string): string {
  return `(SELECT CASE WHEN pg_catalog.pg_table_is_visible(t.oid) THEN t.relname ELSE s.nspname || '.' || t.relname END
           FROM pg_catalog.pg_class t JOIN pg_catalog.pg_namespace s ON s.oid = t.relnamespace WHERE t.oid = ${oid})`;
}

/** The names of a constraint's or index's columns (attnums in `keys`) of relation `rel`, in order. */
function columnNames(rel: string, keys: string): string {
  return `ARRAY(SELECT a.attname FROM pg_catalog.unnest(${keys}) WITH ORDINALITY k(attnum, i)
                JOIN pg_catalog.pg_attribute a ON a.attrelid = ${rel} AND a.attnum = k.attnum ORDER BY k.i)`;
}

const kindOf = (relkind: string): TableType => (['v', 'm'].includes(relkind) ? 'view' : 'table');

async function rows<R extends pg.QueryResultRow>(
  client: pg.ClientBase,
  text: string,
  values: unknown[],
): Promise<R[]> {
  return (await client.query<R>({ text, values, types: resultTypes() })).rows;
}

export async function listTables(
  client: pg.ClientBase,
  request: ListTablesRequest,
  deadline: Deadline,
): Promise<TableList> {
  return readTransaction(client, deadline, async () => {
    const found = await rows<{ shown: string; relkind: string; reltuples: number }>(
      client,
      `SELECT shown, relkind, reltuples FROM (${RELATIONS}) r
       WHERE ($1::text IS NULL OR shown ILIKE $1) AND ($2::boolean OR relkind IN ('r', 'p', 'f'))
       ORDER BY shown`,
      [request.pattern ?? null, request.includeViews],
    );
    return {
      tables: found.map(({ shown, relkind, reltuples }) => {
        const type = kindOf(relkind);
        return {
          name: shown,
          type,
          row_estimate: type === 'table' && reltuples >= 0 ? Math.round(reltuples) : null,
        };
      }),
    };
  });
}

export interface Relation {
  oid: number;
  schema: string;
  name: string;
  /** As list_tables shows it. */
  shown: string;
  type: TableType;
  columns: string[];
}

/**
 * The relation a tool's name means (inside the call's transaction): the visible relation of
 * that exact name, or `schema.name` split at a dot. A name that could mean two relations (a
 * visible table named `sales.orders` beside table `orders` of schema `sales`) is refused rather
 * than guessed: a write must land where its caller meant. Undefined when there is none the role
 * may use.
 */
export async function resolveTable(
  client: pg.ClientBase,
  name: string,
): Promise<Relation | undefined> {
  const [found, other] = await rows<{
    oid: number;
    schema: string;
    name: string;
    shown: string;
    relkind: string;
    columns: string[];
  }>(
    client,
    `SELECT r.oid, r.schema, r.name, r.shown, r.relkind,
            ARRAY(SELECT a.attname FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS columns
     FROM (${RELATIONS}) r
     WHERE (r.visible AND r.name = $1) OR r.schema || '.' || r.name = $1
     ORDER BY (r.visible AND r.name = $1) DESC, length(r.schema)
     LIMIT 2`,
    [name],
  );
  if (other)
    throw new SqlError(
      `${JSON.stringify(name)} could name more than one table or view (${[found, other].map((r) => `${JSON.stringify(r.name)} in schema ${JSON.stringify(r.schema)}`).join(' and ')}); nothing was done. Rename one of them (apply_migration) so that the name means one.`,
      'AMBIGUOUS_NAME',
    );
  return found && { ...found, type: kindOf(found.relkind) };
}

/** A relation the row tools may change, with its columns; refuses anything else. */
export async function tableFor(client: pg.ClientBase, name: string): Promise<Relation> {
  const relation = await resolveTable(client, name);
  if (!relation || relation.type !== 'table')
    throw new SqlError(
      `No table is named ${JSON.stringify(name)}; list_tables shows them.`,
      'UNKNOWN_TABLE',
    );
  return relation;
}

/** The relation's name, quoted by the driver (it matched the catalog). */
export function qualified(client: pg.ClientBase, relation: Relation): string {
  return `${client.escapeIdentifier(relation.schema)}.${client.escapeIdentifier(relation.name)}`;
}

/** A column of the relation by exact name, quoted; refuses anything else. */
export function checkColumn(client: pg.ClientBase, relation: Relation, column: string): string {
  if (!relation.columns.includes(column))
    throw new SqlError(
      `Table ${relation.shown} has no column ${JSON.stringify(column)}; describe_table lists them.`,
      'UNKNOWN_COLUMN',
    );
  return client.escapeIdentifier(column);
}

const ACTIONS: Record<string, string> = {
  a: 'NO ACTION',
  r: 'RESTRICT',
  c: 'CASCADE',
  n: 'SET NULL',
  d: 'SET DEFAULT',
};

interface ColumnRow {
  name: string;
  type: string;
  nullable: boolean;
  default: string | null;
  identity: string;
  generated: string;
  primary_key: boolean;
}

function columnDefault(column: ColumnRow): string | null {
  if (column.identity === 'a') return 'GENERATED ALWAYS AS IDENTITY';
  if (column.identity === 'd') return 'GENERATED BY DEFAULT AS IDENTITY';
  if (column.generated === 's') return `GENERATED ALWAYS AS (${column.default}) STORED`;
  return column.default;
}

interface ConstraintRow {
  name: string;
  type: string;
  own: boolean;
  /** The foreign key references this relation (a self-reference is also own). */
  referencing: boolean;
  table: string;
  columns: string[];
  referenced_table: string | null;
  referenced_columns: string[];
  on_delete: string;
  on_update: string;
  expression: string | null;
}

/** Columns, keys, indexes, foreign keys both ways and checks of one table or view. */
export async function describeTable(
  client: pg.ClientBase,
  name: string,
  deadline: Deadline,
): Promise<TableDescription | undefined> {
  return readTransaction(client, deadline, async () => {
    const relation = await resolveTable(client, name);
    if (!relation) return undefined;
    const columns = await rows<ColumnRow>(
      client,
      `SELECT a.attname AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
              NOT a.attnotnull AS nullable, pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS default,
              a.attidentity::text AS identity, a.attgenerated::text AS generated,
              COALESCE(a.attnum = ANY(pk.conkey), false) AS primary_key
       FROM pg_catalog.pg_attribute a
       LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
       LEFT JOIN pg_catalog.pg_constraint pk ON pk.conrelid = a.attrelid AND pk.contype = 'p'
       WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
      [relation.oid],
    );
    const [primary] = await rows<{ columns: string[] }>(
      client,
      `SELECT ${columnNames('c.conrelid', 'c.conkey')} AS columns
       FROM pg_catalog.pg_constraint c WHERE c.conrelid = $1 AND c.contype = 'p'`,
      [relation.oid],
    );
    const indexes = await rows<{ name: string; unique: boolean; columns: string[] }>(
      client,
      `SELECT ic.relname AS name, i.indisunique AS unique,
              ARRAY(SELECT CASE WHEN i.indkey[k - 1] <> 0
                                THEN (SELECT a.attname::text FROM pg_catalog.pg_attribute a
                                      WHERE a.attrelid = i.indrelid AND a.attnum = i.indkey[k - 1])
                                ELSE pg_catalog.pg_get_indexdef(i.indexrelid, k, true) END
                    FROM generate_series(1, i.indnkeyatts) k ORDER BY k) AS columns
       FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
       WHERE i.indrelid = $1 AND NOT i.indisprimary ORDER BY ic.relname`,
      [relation.oid],
    );
    const constraints = await rows<ConstraintRow>(
      client,
      `SELECT c.conname AS name, c.contype::text AS type, c.conrelid = $1 AS own, c.confrelid = $1 AS referencing,
              ${shownName('c.conrelid')} AS table, ${columnNames('c.conrelid', 'c.conkey')} AS columns,
              ${shownName('c.confrelid')} AS referenced_table,
              ${columnNames('c.confrelid', 'c.confkey')} AS referenced_columns,
              c.confdeltype::text AS on_delete, c.confupdtype::text AS on_update,
              pg_catalog.pg_get_expr(c.conbin, c.conrelid, true) AS expression
       FROM pg_catalog.pg_constraint c
       WHERE (c.conrelid = $1 AND c.contype IN ('f', 'c'))
          OR (c.confrelid = $1 AND c.contype = 'f'
              AND pg_catalog.has_table_privilege(c.conrelid, 'SELECT')
              AND pg_catalog.has_schema_privilege(
                    (SELECT t.relnamespace FROM pg_catalog.pg_class t WHERE t.oid = c.conrelid), 'USAGE'))
       ORDER BY c.conname`,
      [relation.oid],
    );
    const foreignKey = (c: ConstraintRow): ForeignKeyDescription => ({
      columns: c.columns,
      referenced_table: c.referenced_table ?? '',
      referenced_columns: c.referenced_columns,
      on_delete: ACTIONS[c.on_delete] ?? null,
      on_update: ACTIONS[c.on_update] ?? null,
    });
    return {
      name: relation.shown,
      type: relation.type,
      columns: columns.map((column) => ({
        name: column.name,
        type: column.type,
        nullable: column.nullable,
        default: columnDefault(column),
        primary_key: column.primary_key,
      })),
      primary_key: primary?.columns ?? [],
      indexes,
      foreign_keys: constraints.filter((c) => c.type === 'f' && c.own).map(foreignKey),
      referenced_by: constraints
        .filter((c) => c.type === 'f' && c.referencing)
        .map((c) => ({ table: c.table, ...foreignKey(c) })),
      checks: constraints
        .filter((c) => c.type === 'c' && c.own)
        .map((c) => ({ name: c.name, expression: c.expression ?? '' })),
    };
  });
}
