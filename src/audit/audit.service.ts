import { hash } from 'node:crypto';
import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { ConfigType } from '@nestjs/config';
import type { Repository } from 'typeorm';
import type { Principal } from '../auth/principal.js';
import type { RequestInfo } from '../common/request-info.js';
import { auditConfig, databaseConfig } from '../config/configuration.js';
import { messageOf } from '../mcp/tool-context.js';
import { type AuditGaugeSource, Metrics } from '../metrics/metrics.service.js';
import { AuditDatabase } from './audit-database.js';
import {
  AuditRecord,
  type AuditOutcome,
  type CompletedOutcome,
  PENDING_OUTCOME,
} from './audit-record.entity.js';
import { type AuditRow, type AuditStore, auditStoreOf, type Completion } from './audit-store.js';
import { AuditUnavailableError } from './audit-unavailable.js';

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
  /** The `table` argument of a tool that takes one. */
  table?: string;
  rowCount?: number;
}

/** What a tool call would run, as its records keep it (the fields its tool declares). */
export type ToolAttempt = Pick<AuditEvent, 'sql' | 'params' | 'table'>;

/** A write's record, committed as `pending` before the write runs. */
export interface AuditIntent {
  /** Undefined when it could not be written and AUDIT_FAIL_OPEN let the write run anyway. */
  readonly id: number | undefined;
  readonly row: AuditRow;
}

/** How a write ended, for its intent. */
export interface AuditCompletion {
  outcome: Exclude<CompletedOutcome, 'interrupted'>;
  reason?: string;
  rowCount?: number;
  durationMs: number;
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

/** Longest SQL text kept in a record, characters. */
const AUDIT_SQL_MAX_CHARS = 10_000;
/** While the store cannot be written, how often it is tried (a write that is rolled back), ms. */
const RECOVERY_PROBE_MS = 1000;
/** Longest pause between two sweeps for intents that never got their outcome, ms. */
const SWEEP_MAX_PERIOD_MS = 60_000;

export const INTERRUPTED_REASON =
  "the server stopped, or could not write the audit log, before this write's outcome was recorded; whether its change was made is not known";

/**
 * A text as a record keeps it: shortened past `max`, and NUL replaced (PostgreSQL's text cannot
 * hold it; one caller's NUL, e.g. in the `sub` of a forged token, must not fail a whole batch).
 */
function clip(text: string | undefined, max: number): string | null {
  if (text === undefined) return null;
  const kept = text.replaceAll('\0', '\uFFFD');
  return kept.length > max ? `${kept.slice(0, max - 1)}…` : kept;
}

const paramsHashOf = (params: unknown): string => hash('sha256', JSON.stringify(params), 'hex');

function rowOf(event: AuditEvent): AuditRow {
  const { principal, claimed } = event;
  return {
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
    tableName: clip(event.table, 255),
  };
}

type Settle = (result: number | undefined | AuditUnavailableError) => void;
type Write = { kind: 'insert'; row: AuditRow } | { kind: 'complete'; completion: Completion };
type Job = Write & { settle: Settle };

/**
 * The one writer of the audit trail, shared by the tool pipeline and the refusal filters.
 * Records made in the same turn of the event loop are committed together (group commit); each
 * caller's promise resolves once its record is committed. The trail is in the internal database,
 * or where AUDIT_DATABASE_URL puts it.
 *
 * Fail closed: when the store cannot be written, the promise rejects with AuditUnavailableError
 * and callers answer 503 instead of a result. The outage is logged once; while it lasts, records
 * are refused at once (no write is tried, so the main thread never waits on a locked SQLite file)
 * and a write that is rolled back probes the store every second and at each /readyz, until one
 * succeeds. AUDIT_FAIL_OPEN=true answers calls anyway and logs their records instead.
 *
 * Writes leave an intent (`begin`, outcome `pending`) before they run and complete it after
 * (`complete`); intents older than WRITE_TIMEOUT_MS + AUDIT_INTENT_GRACE_MS that no process of
 * this server still waits on are marked `interrupted`, at start-up and periodically.
 */
@Injectable()
export class AuditService
  implements
    OnApplicationBootstrap,
    BeforeApplicationShutdown,
    OnApplicationShutdown,
    AuditGaugeSource
{
  private readonly logger = new Logger('Audit');
  private readonly records: Repository<AuditRecord>;
  private readonly store: AuditStore;
  private queue: Job[] = [];
  /** Batches being written to PostgreSQL; shutdown waits for them. */
  private readonly writing = new Set<Promise<void>>();
  /** Records in those batches. */
  private recordsWriting = 0;
  /** Intents of writes still running in this process: never marked interrupted by its sweeps. */
  private readonly openIntents = new Set<number>();
  private outage: { failure: AuditUnavailableError; since: number; lost: number } | undefined;
  private probing: Promise<boolean> | undefined;
  private recoveryTimer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly interruptAfterMs: number;

  constructor(
    private readonly database: AuditDatabase,
    @Inject(auditConfig.KEY) private readonly cfg: ConfigType<typeof auditConfig>,
    @Inject(databaseConfig.KEY) databaseCfg: ConfigType<typeof databaseConfig>,
    private readonly metrics: Metrics,
  ) {
    this.records = database.dataSource.getRepository(AuditRecord);
    this.store = auditStoreOf(database);
    this.interruptAfterMs = databaseCfg.writeTimeoutMs + cfg.intentGraceMs;
    metrics.watchAudit(this);
  }

  /** False while the store is known not to take writes. */
  get writable(): boolean {
    return this.outage === undefined;
  }

  /** Records waiting for the next group commit, or in one being written. */
  get queueDepth(): number {
    return this.queue.length + this.recordsWriting;
  }

  /** Whether a call may run: its records can be written, or AUDIT_FAIL_OPEN answers it anyway. */
  get accepting(): boolean {
    return this.outage === undefined || this.cfg.failOpen;
  }

  /** Commits one record; rejects with AuditUnavailableError when it cannot (fail closed). */
  async record(event: AuditEvent): Promise<void> {
    await this.enqueue({ kind: 'insert', row: rowOf(event) });
    this.metrics.decisionRecorded(event.outcome, event.tool, event.durationMs);
  }

  /** Commits a write's intent (outcome `pending`) before the write runs. */
  async begin(event: Omit<AuditEvent, 'outcome'>): Promise<AuditIntent> {
    const row = rowOf({ ...event, outcome: PENDING_OUTCOME });
    const id = await this.enqueue({ kind: 'insert', row });
    if (id !== undefined) this.openIntents.add(id);
    return { id, row };
  }

  /** Completes an intent with the write's outcome, once. */
  async complete(intent: AuditIntent, done: AuditCompletion): Promise<void> {
    const final: AuditRow = {
      ...intent.row,
      outcome: done.outcome,
      reason: clip(done.reason, 2000),
      rowCount: done.rowCount ?? null,
      durationMs: Math.round(done.durationMs),
    };
    const { id } = intent;
    const recorded = () =>
      this.metrics.decisionRecorded(done.outcome, intent.row.tool ?? undefined, done.durationMs);
    if (id === undefined) {
      await this.enqueue({ kind: 'insert', row: final });
      return recorded();
    }
    try {
      await this.enqueue({
        kind: 'complete',
        completion: {
          id,
          outcome: final.outcome as CompletedOutcome,
          reason: final.reason,
          rowCount: final.rowCount,
          durationMs: final.durationMs,
          fallback: {
            ...final,
            reason: clip(
              `outcome of record #${id}, which was marked interrupted before it came` +
                (done.reason === undefined ? '' : `: ${done.reason}`),
              2000,
            ),
          },
        },
      });
      recorded();
    } finally {
      // Completed or not, this process no longer waits on it: a sweep may now mark it interrupted.
      this.openIntents.delete(id);
    }
  }

  /**
   * Whether the store takes writes. While it is known not to, tries a write that is rolled back
   * (one at a time, shared by concurrent callers); success ends the outage.
   */
  probe(): Promise<boolean> {
    if (this.outage === undefined) return Promise.resolve(true);
    if (!this.probing) {
      const probing = this.tryProbe();
      this.probing = probing;
      void probing.finally(() => {
        if (this.probing === probing) this.probing = undefined;
      });
    }
    return this.probing;
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

  /** Intents left by a crash are marked at start-up, then periodically. */
  async onApplicationBootstrap(): Promise<void> {
    await this.sweep();
    this.sweepTimer = setInterval(
      () => void this.sweep(),
      Math.min(this.interruptAfterMs, SWEEP_MAX_PERIOD_MS),
    ).unref();
  }

  /** Writes what is pending and waits for every batch still being written. */
  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.sweepTimer);
    clearInterval(this.recoveryTimer);
    this.flush();
    await Promise.all(this.writing);
  }

  /** After the flush: the audit database is closed here. */
  async onApplicationShutdown(): Promise<void> {
    if (this.database.dataSource.isInitialized) await this.database.dataSource.destroy();
  }

  /** The record's id once committed; undefined if it was not and AUDIT_FAIL_OPEN lets it go. */
  private enqueue(write: Write): Promise<number | undefined> {
    return new Promise((resolve, reject) => {
      const settle: Settle = (result) =>
        result instanceof AuditUnavailableError ? reject(result) : resolve(result);
      const queued: Job = { ...write, settle };
      // Known down: refused at once, without trying (see the class comment).
      if (this.outage) return this.notWritten([queued], this.outage.failure);
      if (this.queue.push(queued) === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    const jobs = this.queue;
    this.queue = [];
    if (jobs.length === 0) return;
    if (this.outage) return this.notWritten(jobs, this.outage.failure);
    const inserts: AuditRow[] = [];
    const completions: Completion[] = [];
    for (const job of jobs)
      if (job.kind === 'insert') inserts.push(job.row);
      else completions.push(job.completion);
    let written: number[] | Promise<number[]>;
    try {
      written = this.store.write({ inserts, completions });
    } catch (error) {
      return this.notWritten(jobs, this.wentDown(error));
    }
    if (Array.isArray(written)) return this.written(jobs, written);
    const writing = written.then(
      (ids) => this.written(jobs, ids),
      (error: unknown) => this.notWritten(jobs, this.wentDown(error)),
    );
    this.writing.add(writing);
    this.recordsWriting += jobs.length;
    void writing.finally(() => {
      this.writing.delete(writing);
      this.recordsWriting -= jobs.length;
    });
  }

  private written(jobs: Job[], ids: number[]): void {
    let next = 0;
    for (const job of jobs) job.settle(job.kind === 'insert' ? ids[next++] : job.completion.id);
  }

  private notWritten(jobs: Job[], failure: AuditUnavailableError): void {
    if (this.outage) this.outage.lost += jobs.length;
    this.metrics.auditRecordsNotWritten(jobs.length);
    if (!this.cfg.failOpen) {
      for (const job of jobs) job.settle(failure);
      return;
    }
    // AUDIT_FAIL_OPEN: the calls are answered; their records go to the log instead.
    this.logger.error(
      `${jobs.length} audit records could not be written (AUDIT_FAIL_OPEN=true): ` +
        jobs
          .map((job) => JSON.stringify(job.kind === 'insert' ? job.row : job.completion))
          .join(' '),
    );
    for (const job of jobs) job.settle(undefined);
  }

  /** The outage, begun now unless it already has; logged once, with its cause. */
  private wentDown(error: unknown): AuditUnavailableError {
    if (this.outage) return this.outage.failure;
    const failure = new AuditUnavailableError(messageOf(error));
    this.outage = { failure, since: Date.now(), lost: 0 };
    this.logger.error(
      `The audit log cannot be written (${failure.reason}). ` +
        (this.cfg.failOpen
          ? 'AUDIT_FAIL_OPEN=true: calls are still answered, and their records written to this log.'
          : 'Tool calls and refusals are answered 503, and /readyz too, until it can be written again.'),
    );
    this.recoveryTimer = setInterval(() => void this.probe(), RECOVERY_PROBE_MS).unref();
    return failure;
  }

  private async tryProbe(): Promise<boolean> {
    try {
      await this.store.probe();
    } catch {
      return false;
    }
    const outage = this.outage;
    if (outage) {
      this.outage = undefined;
      clearInterval(this.recoveryTimer);
      this.logger.log(
        `The audit log can be written again, after ${Math.round((Date.now() - outage.since) / 1000)} s; ` +
          `${outage.lost} records were not written meanwhile` +
          (this.cfg.failOpen ? ' (they are in this log).' : ' (their calls were refused).'),
      );
    }
    return true;
  }

  private async sweep(): Promise<void> {
    if (this.outage) return;
    const before = new Date(Date.now() - this.interruptAfterMs).toISOString();
    try {
      const marked = await this.store.markInterrupted(
        before,
        [...this.openIntents],
        INTERRUPTED_REASON,
      );
      if (marked > 0)
        this.logger.warn(
          `${marked} write intents had no outcome after ${this.interruptAfterMs} ms; marked interrupted`,
        );
    } catch (error) {
      this.wentDown(error);
    }
  }
}
