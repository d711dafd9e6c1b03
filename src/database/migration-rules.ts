import type { Logger } from '@nestjs/common';
import { ToolError } from '../mcp/tool-context.js';
import type { MigrationRequest } from './engine.js';
import type { LedgerStatus, MigrationResult } from './results.js';

// apply_migration's rules on every engine: a name is applied once; the same script under that
// name again changes nothing, another script is refused.

/** apply_migration's answer to this request, given whether it applied and its statement count. */
export function migrationResult(request: MigrationRequest, checksum: string) {
  return (applied: boolean, statements: number): MigrationResult => ({
    name: request.name,
    applied,
    dry_run: request.dryRun,
    statements,
    checksum,
  });
}

/**
 * Refuses a name the ledger already holds live (applied, or attempted and not settled failed)
 * unless it is the same script, settled: a different script is a conflict, a diverged attempt
 * must be checked by hand first (`diverged` says what the engine saw).
 */
export function refuseReapply(
  request: MigrationRequest,
  checksum: string,
  recorded: { checksum: string; status: LedgerStatus },
  diverged: string,
): void {
  const { name } = request;
  if (recorded.checksum !== checksum)
    throw new ToolError(
      `A migration named ${name} was already ${recorded.status === 'applied' ? 'applied' : 'attempted'} with different SQL; choose a new name.`,
      'MIGRATION_CONFLICT',
    );
  if (recorded.status === 'diverged')
    throw new ToolError(
      `Migration ${name} was interrupted and ${diverged}; check the schema, then apply what is missing under a new name.`,
      'MIGRATION_DIVERGED',
    );
}

/** What start-up says of a migration a stopped server left pending, once it is settled. */
export function logSettled(logger: Logger, name: string, status: LedgerStatus): void {
  if (status === 'applied')
    logger.log(`Migration ${name} had been applied; the ledger says so now`);
  if (status === 'failed') logger.warn(`Migration ${name} was interrupted before it was applied`);
}
