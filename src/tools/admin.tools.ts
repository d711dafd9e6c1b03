import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { RequireScopes } from '../auth/require-scopes.decorator.js';
import { SqlExecutor } from '../database/sql-executor.js';
import { McpTool } from '../mcp/mcp-tool.decorator.js';
import type { ToolContext, ToolOutput } from '../mcp/tool-context.js';
import { sqlText } from './tool-schemas.js';

const applyMigrationInput = z.object({
  name: z.string().regex(/^[a-z0-9_]{1,64}$/, 'lower-case letters, digits and _ (1 to 64)'),
  sql: sqlText.describe(
    'CREATE, ALTER and DROP statements separated by semicolons, applied atomically',
  ),
});
const applyMigrationOutput = z.object({
  name: z.string(),
  applied: z.boolean(),
  statements: z.number().int(),
  checksum: z.string(),
});

/** Changing the schema, recorded in a ledger by name. */
@Injectable()
@RequireScopes('db:admin')
export class AdminTools {
  constructor(private readonly sql: SqlExecutor) {}

  @McpTool({
    name: 'apply_migration',
    title: 'Apply a schema migration',
    description:
      'Applies DDL (CREATE/ALTER/DROP TABLE, CREATE INDEX, ...) atomically and records it by name. Re-applying the same name with the same SQL does nothing; with different SQL it is an error.',
    input: applyMigrationInput,
    output: applyMigrationOutput,
    annotations: {
      readOnlyHint: false,
      destructiveHint: true,
      idempotentHint: true,
      openWorldHint: false,
    },
  })
  applyMigration(
    input: z.infer<typeof applyMigrationInput>,
    context: ToolContext,
  ): ToolOutput<z.infer<typeof applyMigrationOutput>> {
    const result = this.sql.migrate(input.name, input.sql, {
      subject: context.principal.subject,
      clientId: context.principal.clientId,
    });
    return {
      data: result,
      text: result.applied
        ? `Migration ${result.name} applied (${result.statements} statement${result.statements === 1 ? '' : 's'}).`
        : `Migration ${result.name} was already applied with the same SQL; nothing changed.`,
    };
  }
}
