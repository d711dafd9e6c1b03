import { createHash } from 'node:crypto';
import { type BeforeApplicationShutdown, Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type Database from 'better-sqlite3';
import type { Repository } from 'typeorm';
import type { Principal } from '../auth/principal.js';
import type { RequestInfo } from '../common/request-info.js';
import { AUDIT_TABLE } from '../database/internal-tables.js';
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

/** Longest SQL text kept in a record, characters. */
const AUDIT_SQL_MAX_CHARS = 10_000;

const clip = (text: string | undefined, max: number) =>
  text === undefined ? null : text.length > max ? `${text.slice(0, max - 1)}…` : text;

const paramsHashOf = (params: unknown): string =>
  createHash('sha256').update(JSON.stringify(params)).digest('hex');

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
 */
@Injectable()
export class AuditService implements BeforeApplicationShutdown {
  private readonly logger = new Logger(AuditService.name);
  private pending: { row: AuditRow; done: () => void }[] = [];
  private insert: Database.Statement<AuditRow> | undefined;

  constructor(@InjectRepository(AuditRecord) private readonly records: Repository<AuditRecord>) {}

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

  beforeApplicationShutdown(): void {
    this.flush();
  }

  private flush(): void {
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    try {
      const db = this.connection();
      this.insert ??= db.prepare<AuditRow>(
        `INSERT INTO ${AUDIT_TABLE} (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map((c) => `@${c}`).join(', ')})`,
      );
      const insert = this.insert;
      db.transaction(() => batch.forEach(({ row }) => insert.run(row)))();
    } catch (error) {
      // Not lost: the records go to the log, which operators collect anyway.
      this.logger.error(
        `${batch.length} audit records could not be written (${error instanceof Error ? error.message : String(error)}): ` +
          batch.map(({ row }) => JSON.stringify(row)).join(' '),
      );
    }
    batch.forEach(({ done }) => done());
  }

  private connection(): Database.Database {
    return (
      this.records.manager.connection.driver as unknown as { databaseConnection: Database.Database }
    ).databaseConnection;
  }
}
