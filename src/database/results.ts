import { z } from 'zod';

// The shapes of the engine's results, written once: the engines' result types are inferred from
// these schemas (through engine.ts), and the tools list them as their output schemas.

export const truncationReason = z.enum(['max_rows', 'byte_budget', 'cell_size']);
export type TruncationReason = z.infer<typeof truncationReason>;

const tableType = z.enum(['table', 'view']);
export type TableType = z.infer<typeof tableType>;

export const tableList = z.object({
  tables: z.array(
    z.object({
      name: z.string(),
      type: tableType,
      row_estimate: z.number().int().nullable(),
    }),
  ),
});
export type TableList = z.infer<typeof tableList>;

const foreignKeyDescription = z.object({
  columns: z.array(z.string()),
  referenced_table: z.string(),
  referenced_columns: z.array(z.string()),
  on_delete: z.string().nullable(),
  on_update: z.string().nullable(),
});
export type ForeignKeyDescription = z.infer<typeof foreignKeyDescription>;

export const tableDescription = z.object({
  name: z.string(),
  type: tableType,
  columns: z.array(
    z.object({
      name: z.string(),
      type: z.string(),
      nullable: z.boolean(),
      default: z.string().nullable(),
      primary_key: z.boolean(),
    }),
  ),
  primary_key: z.array(z.string()),
  indexes: z.array(
    z.object({ name: z.string(), columns: z.array(z.string()), unique: z.boolean() }),
  ),
  foreign_keys: z.array(foreignKeyDescription),
  referenced_by: z.array(foreignKeyDescription.extend({ table: z.string() })),
  checks: z.array(z.object({ name: z.string().nullable(), expression: z.string() })),
});
export type TableDescription = z.infer<typeof tableDescription>;

export const readResult = z.object({
  /** Each column's name and the database's name for its type (null when it has none). */
  columns: z.array(z.object({ name: z.string(), type: z.string().nullable() })),
  rows: z.array(z.array(z.unknown())),
  row_count: z.number().int(),
  truncated: z.boolean(),
  truncation_reason: truncationReason.nullable(),
  elapsed_ms: z.number(),
});
export type ReadResult = z.infer<typeof readResult>;

const planStep = z.object({ id: z.number().int(), parent: z.number().int(), detail: z.string() });
export type PlanStep = z.infer<typeof planStep>;

export const explainResult = z.object({ plan: z.array(planStep) });
export type ExplainResult = z.infer<typeof explainResult>;

export const writeResult = z.object({
  affected_rows: z.number().int(),
  dry_run: z.boolean(),
  /**
   * Rows returned by RETURNING (execute, insert_rows) or, on a dry run, the rows affected: the
   * first ones, as many as fit the limits, long values shortened.
   */
  rows: z.array(z.record(z.string(), z.unknown())).optional(),
  truncated: z
    .boolean()
    .optional()
    .describe(
      'With rows: true when rows were left out or long values shortened (never the change)',
    ),
  truncation_reason: truncationReason.nullable().optional(),
  /** SQLite's rowid of the last inserted row; null where the engine has none (PostgreSQL). */
  last_insert_rowid: z.number().int().nullable().optional(),
});
export type WriteResult = z.infer<typeof writeResult>;

export const migrationResult = z.object({
  name: z.string(),
  applied: z.boolean(),
  dry_run: z.boolean(),
  statements: z.number().int(),
  checksum: z.string(),
});
export type MigrationResult = z.infer<typeof migrationResult>;

export const LEDGER_STATUSES = ['pending', 'applied', 'failed', 'diverged'] as const;
export type LedgerStatus = (typeof LEDGER_STATUSES)[number];

/** A ledger row as list_migrations gives it. */
export const ledgerEntry = z.object({
  name: z.string(),
  checksum: z.string(),
  applied_at: z.string(),
  applied_by: z.string(),
  client_id: z.string().nullable(),
  sql: z.string(),
  status: z.enum(LEDGER_STATUSES),
});
export type LedgerEntry = z.infer<typeof ledgerEntry>;
