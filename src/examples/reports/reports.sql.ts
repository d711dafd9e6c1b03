import type { Principal } from '../../auth/principal.js';
import type { DatabaseEngine, ReadResult } from '../../database/engine.js';
import type { SqlValue } from '../../database/sql-values.js';
import { ToolError } from '../../mcp/tool-context.js';

// The reports' SQL: reviewed statements over the demo schema (sandbox/demo-database.ts) in SQL
// that SQLite and PostgreSQL both take, values always bound, never pasted in.

// #region readme
/** Orders and revenue per month of a period, cancelled orders left out. Params: from, to. */
export const REVENUE_BY_MONTH = `SELECT substr(CAST(o.ordered_at AS TEXT), 1, 7) AS month,
       count(DISTINCT o.id) AS orders,
       sum(i.quantity * i.unit_price_cents) AS revenue_cents
  FROM orders o JOIN order_items i ON i.order_id = o.id
 WHERE o.status <> 'cancelled' AND CAST(o.ordered_at AS TEXT) >= ? AND CAST(o.ordered_at AS TEXT) < ?
 GROUP BY 1 ORDER BY 1`;
// #endregion readme

/** The customers who spent most in a period. Params: from, to, limit. */
export const TOP_CUSTOMERS = `SELECT c.id, c.name, c.country, count(DISTINCT o.id) AS orders,
       sum(i.quantity * i.unit_price_cents) AS revenue_cents
  FROM customers c
  JOIN orders o ON o.customer_id = c.id AND o.status <> 'cancelled'
   AND CAST(o.ordered_at AS TEXT) >= ? AND CAST(o.ordered_at AS TEXT) < ?
  JOIN order_items i ON i.order_id = o.id
 GROUP BY c.id, c.name, c.country
 ORDER BY revenue_cents DESC, c.id
 LIMIT ?`;

/** A report's statement in the engine's placeholder style: SQLite's `?`, PostgreSQL's `$1, $2`. */
function placeholdersFor(sql: string, dialect: string): string {
  if (dialect === 'SQLite') return sql;
  if (dialect === 'PostgreSQL') {
    let n = 0;
    return sql.replace(/\?/g, () => `$${++n}`);
  }
  throw new ToolError(`The reports have no SQL for ${dialect} yet.`, 'UNSUPPORTED_DATABASE');
}

// #region readme
/**
 * Runs a report through the engine, as every tool's SQL runs: one read-only statement in the
 * read-only executor, with a deadline and the caller's fair share, at most `maxRows` rows.
 */
export async function runReport(
  database: DatabaseEngine,
  principal: Principal,
  report: { sql: string; params: SqlValue[]; maxRows: number },
): Promise<{ sql: string; params: SqlValue[]; result: ReadResult }> {
  const sql = placeholdersFor(report.sql, database.dialect);
  const { params, maxRows } = report;
  const result = await database.query({ sql, params, maxRows, timeoutMs: 5000 }, principal);
  return { sql, params, result };
}
// #endregion readme

/**
 * A count or sum as a number: PostgreSQL's bigint and numeric come back as strings (exact), and
 * a report must not round them silently.
 */
export function exactInteger(value: unknown): number {
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isSafeInteger(n))
    throw new ToolError(`A report value (${String(value)}) is not an exact integer.`, 'BAD_VALUE');
  return n;
}
