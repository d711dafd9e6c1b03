// #region readme
import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { RequireScopes } from '../../auth/require-scopes.decorator.js';
import { DatabaseEngine } from '../../database/engine.js';
import { McpTool, READ_ONLY_TOOL } from '../../mcp/mcp-tool.decorator.js';
import { type ToolContext, ToolError, type ToolOutput } from '../../mcp/tool-context.js';
import { REPORT_SCOPES } from './reports.scopes.js';
import { exactInteger, REVENUE_BY_MONTH, runReport, TOP_CUSTOMERS } from './reports.sql.js';

const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a day, YYYY-MM-DD');
const period = {
  from: day.default('0001-01-01').describe('First day included (YYYY-MM-DD)'),
  to: day.default('9999-12-31').describe('First day left out (YYYY-MM-DD)'),
};
const MAX_MONTHS = 240;

const revenueInput = z.object(period);
const revenueOutput = z.object({
  months: z.array(
    z.object({ month: z.string(), orders: z.number().int(), revenue_cents: z.number().int() }),
  ),
  truncated: z.boolean(),
});

function checkPeriod({ from, to }: { from: string; to: string }): void {
  if (from >= to)
    throw new ToolError(`The period is empty: from (${from}) must come before to (${to}).`);
}

const euros = (cents: number) => (cents / 100).toFixed(2);
// #endregion readme

const topCustomersInput = z.object({
  ...period,
  limit: z.number().int().min(1).max(50).default(10),
});
const topCustomersOutput = z.object({
  customers: z.array(
    z.object({
      id: z.number().int(),
      name: z.string(),
      country: z.string(),
      orders: z.number().int(),
      revenue_cents: z.number().int(),
    }),
  ),
});

// #region readme

/**
 * The worked example of an extension (README, "Adding a tool"): two reviewed reports behind a
 * scope of their own. Their SQL goes through DatabaseEngine (runReport), never a connection of
 * their own, and each call's record carries the statement it ran (`audit` in the result).
 */
@Injectable()
@RequireScopes(REPORT_SCOPES.read)
export class ReportsTools {
  constructor(private readonly database: DatabaseEngine) {}

  @McpTool({
    name: 'revenue_by_month',
    title: 'Revenue by month',
    description:
      'Orders and revenue (in cents) per month of a period, cancelled orders left out. from is included, to is not.',
    input: revenueInput,
    output: revenueOutput,
    annotations: READ_ONLY_TOOL,
  })
  async revenueByMonth(
    input: z.infer<typeof revenueInput>,
    context: ToolContext,
  ): Promise<ToolOutput<z.infer<typeof revenueOutput>>> {
    checkPeriod(input);
    const { sql, params, result } = await runReport(this.database, context.principal, {
      sql: REVENUE_BY_MONTH,
      params: [input.from, input.to],
      maxRows: MAX_MONTHS,
    });
    const months = result.rows.map(([month, orders, revenue]) => ({
      month: String(month),
      orders: exactInteger(orders),
      revenue_cents: exactInteger(revenue),
    }));
    const lines = months.map((m) => `${m.month}: ${m.orders} orders, ${euros(m.revenue_cents)}`);
    return {
      data: { months, truncated: result.truncated },
      text: lines.join('\n') || 'No order in this period.',
      audit: { statement: sql, params, rowCount: result.row_count },
    };
  }

  // #endregion readme
  @McpTool({
    name: 'top_customers',
    title: 'Top customers',
    description:
      'The customers who spent most in a period (revenue in cents, cancelled orders left out), at most limit (default 10).',
    input: topCustomersInput,
    output: topCustomersOutput,
    annotations: READ_ONLY_TOOL,
  })
  async topCustomers(
    input: z.infer<typeof topCustomersInput>,
    context: ToolContext,
  ): Promise<ToolOutput<z.infer<typeof topCustomersOutput>>> {
    checkPeriod(input);
    const { sql, params, result } = await runReport(this.database, context.principal, {
      sql: TOP_CUSTOMERS,
      params: [input.from, input.to, input.limit],
      maxRows: input.limit,
    });
    const customers = result.rows.map(([id, name, country, orders, revenue]) => ({
      id: exactInteger(id),
      name: String(name),
      country: String(country),
      orders: exactInteger(orders),
      revenue_cents: exactInteger(revenue),
    }));
    return {
      data: { customers },
      text:
        customers
          .map((c, i) => `${i + 1}. ${c.name} (${c.country}): ${euros(c.revenue_cents)}`)
          .join('\n') || 'No order in this period.',
      audit: { statement: sql, params, rowCount: result.row_count },
    };
  }
  // #region readme
}
// #endregion readme
