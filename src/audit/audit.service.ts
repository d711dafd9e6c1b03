import { hash } from 'node:crypto';
import {
  type BeforeApplicationShutdown,
  Injectable,
  Logger,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type Database from 'better-sqlite3';
import type { Repository } from 'typeorm';
import type { Principal } from '../auth/principal.js';
import type { RequestInfo } from '../common/request-info.js';
import { AUDIT_TABLE } from '../database/internal-tables.js';
import { messageOf } from '../mcp/tool-context.js';
import { AuditDatabase } from './audit-database.js';
import { AuditRecord, type AuditOutcome } from './audit-record.entity.js';

export interface AuditEvent extends Partial<RequestInfo> {
  outcome: AuditOutcome;
  principal?: Principal;
  /** Claims read from a token that failed verification: who it claimed to be. */
  claimed?: { subject?: string; clientId?: string; tokenId?: string };
  tool?: string;
  reason?: string;
  requiredScopes?: readonly string[];
  durationMs?: number;
  /** The SQL as the caller sent it. */
  sql?: string;
  /** The bound parameters: only a hash of them is stored, never a value. */
  params?: unknown;
  rowCount?: number;
}

/** Which records a search returns: every given condition holds; `beforeId` pages backwards. */
export interface AuditFilter {
  /** ISO 8601 in UTC with milliseconds, as records store `time`: inclusive. */
  since?: string;
  /** Same form; exclusive. */
  until?: string;
  subject?: string;
  clientId?: string;
  tool?: string;
  outcome?: AuditOutcome;
  beforeId?: number;
  limit: number;
}

type AuditRow = Omit<AuditRecord, 'id' | 'subjectUnverified'> & { subjectUnverified: number };

/** Rows per INSERT into PostgreSQL: 20 parameters a row stays far below its 65535. */
const POSTGRES_BATCH_ROWS = 1000;

/** Longest SQL text kept in a record, characters. */
const AUDIT_SQL_MAX_CHARS = 10_000;

const clip = (text: string | undefined, max: number) =>
  text === undefined ? null : text.length > max ? `${text.slice(0, max - 1)}…` : text;

const paramsHashOf = (params: unknown): string => hash('sha256', JSON.stringify(params), 'hex');

const COLUMNS: (keyof AuditRow)[] = [
  'time',
  'requestId',
  'subject',
  'subjectUnverified',
  'clientId',
  'tokenId',
  'tool',
  'outcome',
  'reason',
  'requiredScopes',
  'grantedScopes',
  'durationMs',
  'remoteAddress',
  'principalName',
  'principalEmail',
  'rowCount',
  'sqlText',
  'paramsHash',
  'protocolVersion',
  'userAgent',
];

/**
 * The one writer of the audit trail, shared by the tool interceptor and the challenge filter.
 * Records made in the same turn of the event loop are committed together (group commit); each
 * caller's promise resolves once its record is committed, so nothing is answered unaudited.
 * The trail is in the internal database, or where AUDIT_DATABASE_URL puts it.
 */
@Injectable()
export class AuditService implements BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly logger = new Logger(AuditService.name);
  private readonly records: Repository<AuditRecord>;
  private pending: { row: AuditRow; done: () => void }[] = [];
  private insert: Database.Statement<AuditRow> | undefined;
  /** Batches being written to PostgreSQL; shutdown waits for them. */
  private readonly writing = new Set<Promise<void>>();

  constructor(private readonly database: AuditDatabase) {
    this.records = database.dataSource.getRepository(AuditRecord);
  }

  record(event: AuditEvent): Promise<void> {
    const { principal, claimed } = event;
    const row: AuditRow = {
      time: new Date().toISOString(),
      requestId: clip(event.requestId, 64),
      subject: clip(principal?.subject ?? claimed?.subject, 255),
      subjectUnverified: !principal && claimed?.subject !== undefined ? 1 : 0,
      clientId: clip(principal?.clientId ?? claimed?.clientId, 255),
      tokenId: clip(principal?.tokenId ?? claimed?.tokenId, 255),
      tool: clip(event.tool, 128),
      outcome: event.outcome,
      reason: clip(event.reason, 2000),
      requiredScopes: event.requiredScopes ? clip(event.requiredScopes.join(' '), 512) : null,
      grantedScopes: principal ? clip([...principal.scopes].join(' '), 1024) : null,
      durationMs: event.durationMs === undefined ? null : Math.round(event.durationMs),
      remoteAddress: clip(event.remoteAddress, 64),
      principalName: clip(principal?.name, 255),
      principalEmail: clip(principal?.email, 255),
      rowCount: event.rowCount ?? null,
      sqlText: clip(event.sql, AUDIT_SQL_MAX_CHARS),
      paramsHash: event.params === undefined ? null : paramsHashOf(event.params),
      protocolVersion: clip(event.protocolVersion, 32),
      userAgent: clip(event.userAgent, 256),
    };
    return new Promise((done) => {
      if (this.pending.push({ row, done }) === 1) setImmediate(() => this.flush());
    });
  }

  /** Most recent first; for operators and tests. */
  recent(limit = 100): Promise<AuditRecord[]> {
    return this.records.find({ order: { id: 'DESC' }, take: limit });
  }

  /** Newest first, at most `filter.limit` records; every value is a bound parameter. */
  search(filter: AuditFilter): Promise<AuditRecord[]> {
    const query = this.records
      .createQueryBuilder('record')
      .orderBy('record.id', 'DESC')
      .limit(filter.limit);
    const conditions: [string, keyof AuditFilter][] = [
      ['record.time >= :since', 'since'],
      ['record.time < :until', 'until'],
      ['record.subject = :subject', 'subject'],
      ['record.clientId = :clientId', 'clientId'],
      ['record.tool = :tool', 'tool'],
      ['record.outcome = :outcome', 'outcome'],
      ['record.id < :beforeId', 'beforeId'],
    ];
    for (const [condition, key] of conditions)
      if (filter[key] !== undefined) query.andWhere(condition, { [key]: filter[key] });
    return query.getMany();
  }

  /** Writes what is pending and waits for every batch still being written. */
  async beforeApplicationShutdown(): Promise<void> {
    this.flush();
    await Promise.all(this.writing);
  }

  /** After the flush: the audit database is closed here. */
  async onApplicationShutdown(): Promise<void> {
    if (this.database.dataSource.isInitialized) await this.database.dataSource.destroy();
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    const sqlite = this.database.sqliteConnection;
    if (sqlite) {
      try {
        this.insert ??= sqlite.prepare<AuditRow>(
          `INSERT INTO ${AUDIT_TABLE} (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map((c) => `@${c}`).join(', ')})`,
        );
        const insert = this.insert;
        sqlite.transaction(() => batch.forEach(({ row }) => insert.run(row)))();
      } catch (error) {
        this.notWritten(batch, error);
      }
      batch.forEach(({ done }) => done());
      return;
    }
    const writing = this.writeToPostgres(batch.map(({ row }) => row)).then(
      () => undefined,
      (error: unknown) => this.notWritten(batch, error),
    );
    this.writing.add(writing);
    void writing.finally(() => {
      this.writing.delete(writing);
      batch.forEach(({ done }) => done());
    });
  }

  /** One multi-row INSERT per chunk: a single round trip and commit for a whole batch. */
  private async writeToPostgres(rows: AuditRow[]): Promise<void> {
    for (let start = 0; start < rows.length; start += POSTGRES_BATCH_ROWS)
      await this.records
        .createQueryBuilder()
        .insert()
        .into(AuditRecord)
        .values(
          rows
            .slice(start, start + POSTGRES_BATCH_ROWS)
            .map((row) => ({ ...row, subjectUnverified: row.subjectUnverified === 1 })),
        )
        .updateEntity(false)
        .execute();
  }

  private notWritten(batch: { row: AuditRow }[], error: unknown): void {
    // Not lost: the records go to the log, which operators collect anyway.
    this.logger.error(
      `${batch.length} audit records could not be written (${messageOf(error)}): ` +
        batch.map(({ row }) => JSON.stringify(row)).join(' '),
    );
  }
}
