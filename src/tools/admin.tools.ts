import { Injectable } from '@nestjs/common';
import { z } from 'zod';
import { RequireScopes } from '../auth/require-scopes.decorator.js';
import { DatabaseEngine, type MigrationResult } from '../database/engine.js';
import { migrationResult } from '../database/results.js';
import { McpTool } from '../mcp/mcp-tool.decorator.js';
import { DATABASE_SCOPES } from './scopes.js';
import type { ToolContext, ToolOutput } from '../mcp/tool-context.js';
import { count, dryRun, sqlText } from './tool-schemas.js';

const applyMigrationInput = z.object({
  name: z.string().regex(/^[a-z0-9_]{1,64}$/, 'lower-case letters, digits and _ (1 to 64)'),
  sql: sqlText.describe(
    'CREATE, ALTER and DROP statements separated by semicolons, applied atomically',
  ),
  dry_run: dryRun,
});

/** Changing the schema, recorded in a ledger by name (in ScopeDB's internal database). */
@Injectable()
@RequireScopes(DATABASE_SCOPES.admin)
export class AdminTools {
  constructor(private readonly database: DatabaseEngine) {}

  @McpTool({
    name: 'apply_migration',
    title: 'Apply a schema migration',
    description:
      'Applies DDL (CREATE/ALTER/DROP TABLE, CREATE INDEX, views, triggers) atomically and records it by name with a checksum, who and when. Re-applying the same name with the same SQL does nothing; with different SQL it is an error. dry_run checks it and rolls back.',
    input: applyMigrationInput,
    output: migrationResult,
    annotations: {
      readOnlyHint: false,
      destructiveHint: true,
      idempotentHint: true,
      openWorldHint: false,
    },
    audit: { statement: 'sql' },
  })
  async applyMigration(
    input: z.infer<typeof applyMigrationInput>,
    context: ToolContext,
  ): Promise<ToolOutput<MigrationResult>> {
    const result = await this.database.applyMigration({
      name: input.name,
      sql: input.sql,
      dryRun: input.dry_run,
      principal: context.principal,
    });
    const statements = count(result.statements, 'statement');
    return {
      data: result,
      text: result.dry_run
        ? `Dry run: migration ${result.name} (${statements}) would apply; nothing was changed.`
        : result.applied
          ? `Migration ${result.name} applied (${statements}).`
          : `Migration ${result.name} was already applied with the same SQL; nothing changed.`,
    };
  }
}
