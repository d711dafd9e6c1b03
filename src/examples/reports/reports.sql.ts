import { ToolError } from '../../mcp/tool-context.js';

// The reports' SQL: reviewed statements over the demo schema (sandbox/demo-database.ts), written
// once per dialect (placeholders and casts differ), values always bound, never pasted in. They
// run as any caller SQL does: in the read-only executor, with its deadline and result limits.

export interface ReportSql {
  SQLite: string;
  PostgreSQL: string;
}

/** Revenue and orders per month of a period, cancelled orders left out. Params: from, to. */
export const REVENUE_BY_MONTH: ReportSql = {
  SQLite: `SELECT substr(o.ordered_at, 1, 7) AS month,
       count(DISTINCT o.id) AS orders,
       sum(i.quantity * i.unit_price_cents) AS revenue_cents
  FROM orders o JOIN order_items i ON i.order_id = o.id
 WHERE o.status <> 'cancelled' AND o.ordered_at >= ? AND o.ordered_at < ?
 GROUP BY 1 ORDER BY 1`,
  PostgreSQL: `SELECT substr(o.ordered_at::text, 1, 7) AS month,
       count(DISTINCT o.id) AS orders,
       sum(i.quantity * i.unit_price_cents) AS revenue_cents
  FROM orders o JOIN order_items i ON i.order_id = o.id
 WHERE o.status <> 'cancelled' AND o.ordered_at::text >= $1 AND o.ordered_at::text < $2
 GROUP BY 1 ORDER BY 1`,
};

/** The customers who spent most in a period. Params: from, to, limit. */
export const TOP_CUSTOMERS: ReportSql = {
  SQLite: `SELECT c.id, c.name, c.country,
       count(DISTINCT o.id) AS orders,
       sum(i.quantity * i.unit_price_cents) AS revenue_cents
  FROM customers c
  JOIN orders o ON o.customer_id = c.id
  JOIN order_items i ON i.order_id = o.id
 WHERE o.status <> 'cancelled' AND o.ordered_at >= ? AND o.ordered_at < ?
 GROUP BY c.id, c.name, c.country
 ORDER BY revenue_cents DESC, c.id
 LIMIT ?`,
  PostgreSQL: `SELECT c.id, c.name, c.country,
       count(DISTINCT o.id) AS orders,
       sum(i.quantity * i.unit_price_cents) AS revenue_cents
  FROM customers c
  JOIN orders o ON o.customer_id = c.id
  JOIN order_items i ON i.order_id = o.id
 WHERE o.status <> 'cancelled' AND o.ordered_at::text >= $1 AND o.ordered_at::text < $2
 GROUP BY c.id, c.name, c.country
 ORDER BY revenue_cents DESC, c.id
 LIMIT $3`,
};

/** The statement for the engine that runs (DatabaseEngine.dialect). */
export function sqlFor(report: ReportSql, dialect: string): string {
  if (dialect !== 'SQLite' && dialect !== 'PostgreSQL')
    throw new ToolError(`The reports have no SQL for ${dialect} yet.`, 'UNSUPPORTED_DATABASE');
  return report[dialect];
}

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
