import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { RequireScopes } from '../auth/require-scopes.decorator.js';
import { SqlExecutor } from '../database/sql-executor.js';
import { McpTool } from '../mcp/mcp-tool.decorator.js';
import type { ToolOutput } from '../mcp/tool-context.js';
import { readResult, sqlParams, sqlText } from './tool-schemas.js';

const executeInput = z.object({
  sql: sqlText.describe('Exactly one INSERT, UPDATE, DELETE or REPLACE statement'),
  params: sqlParams,
});
const executeOutput = z.object({
  affected_rows: z.number().int(),
  last_insert_rowid: z.number().int().nullable(),
  returned: readResult.optional(),
});

/** Writing rows; never the schema. */
@Injectable()
@RequireScopes('db:modify')
export class ModifyTools {
  constructor(private readonly sql: SqlExecutor) {}

  @McpTool({
    name: 'execute',
    title: 'Change rows',
    description:
      'Runs exactly one INSERT, UPDATE, DELETE or REPLACE statement with bound parameters in a transaction and returns the number of affected rows. Schema changes are refused.',
    input: executeInput,
    output: executeOutput,
    annotations: {
      readOnlyHint: false,
      destructiveHint: true,
      idempotentHint: false,
      openWorldHint: false,
    },
  })
  execute(input: z.infer<typeof executeInput>): ToolOutput<z.infer<typeof executeOutput>> {
    const result = this.sql.write(input.sql, input.params);
    return {
      data: result,
      text:
        `${result.affected_rows} row${result.affected_rows === 1 ? '' : 's'} affected` +
        (result.returned
          ? `\n${result.returned.rows.map((row) => JSON.stringify(row)).join('\n')}`
          : ''),
    };
  }
}
