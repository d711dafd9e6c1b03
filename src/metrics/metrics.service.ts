import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AuditOutcome } from '../audit/audit-record.entity.js';

/** Where a request went, as a label: a fixed set, whatever path the client sent. */
export type HttpRoute = 'mcp' | 'well_known' | 'health' | 'other';
/** Which SQLite worker pool: the read-only workers or the one writer. */
export type SqlWorkerPoolName = 'read' | 'write';
/** Why a SQLite worker was replaced. */
export type WorkerReplacement = 'deadline' | 'memory_limit' | 'failed';
/** What stopped a PostgreSQL call at its deadline: the database's own timeouts, or ours. */
export type DeadlineStopper = 'database' | 'backstop';
/** Why a PostgreSQL backend was ended with pg_terminate_backend. */
export type TerminationReason = 'deadline' | 'oversized_message';
/** What one call to Casdoor's introspection said: active, not active, or no usable answer. */
export type IntrospectionResult = 'active' | 'inactive' | 'error';
/** Whose budget a rate-limit refusal spent. */
export type RateLimitKind = 'principal' | 'ip';

/** What the audit gauges read at each scrape. */
export interface AuditGaugeSource {
  /** Records waiting to be committed, or being committed. */
  readonly queueDepth: number;
  /** False while the audit store is known not to take writes. */
  readonly writable: boolean;
}

/** The label of a tool that is not in the registry (never the name a client sent). */
export const UNKNOWN_TOOL = 'unknown';

const TOOL_OUTCOMES = ['success', 'tool_error', 'refused_scope'] as const;
type ToolOutcome = (typeof TOOL_OUTCOMES)[number];

/** Refusals, as audited (`refused_<reason>`), by the reason label they are counted under. */
const REFUSALS = {
  refused_no_token: 'no_token',
  refused_invalid_token: 'invalid_token',
  refused_scope: 'scope',
  refused_origin: 'origin',
  refused_rate_limit: 'rate_limit',
  refused_invalid_request: 'invalid_request',
} as const satisfies Partial<Record<AuditOutcome, string>>;
type RefusalOutcome = keyof typeof REFUSALS;

/** Methods a client may send, as labels; any other is `other`. */
const HTTP_METHODS = new Set(['GET', 'POST', 'OPTIONS', 'DELETE', 'HEAD', 'PUT', 'PATCH']);

/** From a key lookup (under a millisecond) to the longest deadline a call may be given. */
const SECONDS_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

const isToolOutcome = (outcome: AuditOutcome): outcome is ToolOutcome =>
  (TOOL_OUTCOMES as readonly string[]).includes(outcome);
const isRefusal = (outcome: AuditOutcome): outcome is RefusalOutcome =>
  Object.hasOwn(REFUSALS, outcome);

/**
 * The Prometheus metrics of one application: a registry of its own (never prom-client's global
 * one, so that apps and tests in one process stay apart), filled by intention-named methods
 * called where each fact is decided. Every label comes from a fixed set or from the tool
 * registry; never from a principal, an address or a name a client sent. Recording is a counter
 * increment or a histogram observation in memory (about a microsecond): nothing waits for it.
 */
@Injectable()
export class Metrics {
  private readonly registry = new Registry();
  /** The registered tools: the only names a tool label takes. */
  private readonly tools = new Set<string>();
  private audit: AuditGaugeSource | undefined;
  private processMetrics = false;

  private readonly httpRequests = new Counter({
    name: 'scopedb_http_requests_total',
    help: 'HTTP requests answered on the MCP port, by route, method and status code.',
    labelNames: ['route', 'method', 'code'] as const,
    registers: [this.registry],
  });
  private readonly httpDuration = new Histogram({
    name: 'scopedb_http_request_duration_seconds',
    help: 'Time from a request reaching the MCP port to the end of its answer, by route.',
    labelNames: ['route'] as const,
    buckets: SECONDS_BUCKETS,
    registers: [this.registry],
  });
  private readonly toolCalls = new Counter({
    name: 'scopedb_tool_calls_total',
    help: 'Tool calls, by tool and audited outcome (success, tool_error, refused_scope), counted once their audit record is committed.',
    labelNames: ['tool', 'outcome'] as const,
    registers: [this.registry],
  });
  private readonly toolDuration = new Histogram({
    name: 'scopedb_tool_call_duration_seconds',
    help: "Time a tool call ran (its audit record's durationMs), by tool.",
    labelNames: ['tool'] as const,
    buckets: SECONDS_BUCKETS,
    registers: [this.registry],
  });
  private readonly refusals = new Counter({
    name: 'scopedb_refusals_total',
    help: 'Requests refused, by reason (the audit outcome refused_<reason>), counted once their audit record is committed.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private readonly rateLimitRefusals = new Counter({
    name: 'scopedb_rate_limit_refusals_total',
    help: "Requests answered 429, by the budget they spent: a principal's or an IP address's.",
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });
  private readonly rateLimitFallback = new Gauge({
    name: 'scopedb_rate_limit_redis_fallback',
    help: '1 while RATE_LIMIT_REDIS_URL is set but Redis is unreachable, so this process counts in its own memory; else 0.',
    registers: [this.registry],
  });
  private readonly rateLimitFallbacks = new Counter({
    name: 'scopedb_rate_limit_redis_fallbacks_total',
    help: 'Times this process lost Redis and began counting rate limits in its own memory.',
    registers: [this.registry],
  });
  private readonly auditQueue: Gauge = new Gauge({
    name: 'scopedb_audit_queue_depth',
    help: 'Audit records waiting to be committed, or being committed.',
    registers: [this.registry],
    collect: () => this.auditQueue.set(this.audit?.queueDepth ?? 0),
  });
  private readonly auditWritable: Gauge = new Gauge({
    name: 'scopedb_audit_writable',
    help: '1 while audit records can be written; 0 during an outage (calls are answered 503 unless AUDIT_FAIL_OPEN).',
    registers: [this.registry],
    collect: () => this.auditWritable.set(this.audit?.writable === false ? 0 : 1),
  });
  private readonly auditFailures = new Counter({
    name: 'scopedb_audit_write_failures_total',
    help: 'Audit records that could not be written (their calls answered 503, or logged under AUDIT_FAIL_OPEN).',
    registers: [this.registry],
  });
  private readonly sqlWorkerRestarts = new Counter({
    name: 'scopedb_sql_worker_restarts_total',
    help: 'SQLite worker processes replaced, by pool and reason: killed at a deadline, stopped at the memory ceiling, or failed.',
    labelNames: ['pool', 'reason'] as const,
    registers: [this.registry],
  });
  private readonly postgresDeadlines = new Counter({
    name: 'scopedb_postgres_deadline_stops_total',
    help: "PostgreSQL calls stopped at their deadline, by what stopped them: the database's own timeouts, or ScopeDB's cancel (backstop).",
    labelNames: ['by'] as const,
    registers: [this.registry],
  });
  private readonly postgresTerminations = new Counter({
    name: 'scopedb_postgres_backend_terminations_total',
    help: 'PostgreSQL backends ended with pg_terminate_backend, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private readonly jwksFetches = new Counter({
    name: 'scopedb_jwks_fetches_total',
    help: "Requests for the issuer's JWKS (key refreshes, unknown kids, readiness probes).",
    registers: [this.registry],
  });
  private readonly jwksFailures = new Counter({
    name: 'scopedb_jwks_fetch_failures_total',
    help: "Requests for the issuer's JWKS that failed (unreachable, timed out, an HTTP error).",
    registers: [this.registry],
  });
  private readonly introspectionCalls = new Counter({
    name: 'scopedb_introspection_calls_total',
    help: "Calls to Casdoor's introspection endpoint (AUTH_INTROSPECTION), by result: active, inactive (revoked, signed out, expired, or contradicting the token), error (unreachable, timed out, refused credentials, a malformed answer).",
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  private readonly introspectionCacheHits = new Counter({
    name: 'scopedb_introspection_cache_hits_total',
    help: 'Requests whose token was confirmed from an answer already kept (AUTH_INTROSPECTION_CACHE_S) or already being fetched, without a call of their own.',
    registers: [this.registry],
  });
  private readonly introspectionUp = new Gauge({
    name: 'scopedb_introspection_reachable',
    help: "1 while Casdoor's introspection answers (or AUTH_INTROSPECTION is off); 0 during an outage.",
    registers: [this.registry],
  });
  private readonly introspectionGrace = new Counter({
    name: 'scopedb_introspection_grace_accepted_total',
    help: 'Requests accepted on local verification alone during an introspection outage (AUTH_INTROSPECTION_ON_FAILURE=accept, within AUTH_INTROSPECTION_GRACE_S).',
    registers: [this.registry],
  });

  constructor() {
    for (const reason of Object.values(REFUSALS)) this.refusals.inc({ reason }, 0);
    for (const limit of ['principal', 'ip'] as const) this.rateLimitRefusals.inc({ limit }, 0);
    for (const result of ['active', 'inactive', 'error'] as const)
      this.introspectionCalls.inc({ result }, 0);
    this.introspectionUp.set(1);
  }

  /** The exposition format's content type. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric, in the exposition format. */
  exposition(): Promise<string> {
    return this.registry.metrics();
  }

  /** Adds prom-client's process and Node.js metrics (CPU, memory, event loop lag, GC), once. */
  collectProcessMetrics(): void {
    if (this.processMetrics) return;
    this.processMetrics = true;
    collectDefaultMetrics({ register: this.registry });
  }

  /** The tools that exist: the only names a tool label takes (anything else is `unknown`). */
  toolsRegistered(names: Iterable<string>): void {
    for (const tool of names) {
      this.tools.add(tool);
      // Each outcome's series at 0 from the start, so that rate() sees them.
      for (const outcome of TOOL_OUTCOMES) this.toolCalls.inc({ tool, outcome }, 0);
    }
  }

  /** The audit log whose queue depth and state the gauges report at each scrape. */
  watchAudit(source: AuditGaugeSource): void {
    this.audit = source;
  }

  httpRequestFinished(route: HttpRoute, method: string, status: number, seconds: number): void {
    const label = HTTP_METHODS.has(method) ? method : 'other';
    this.httpRequests.inc({ route, method: label, code: status });
    this.httpDuration.observe({ route }, seconds);
  }

  /** A decision about a request, committed to the audit log (or let go by AUDIT_FAIL_OPEN). */
  decisionRecorded(
    outcome: AuditOutcome,
    tool: string | undefined,
    durationMs: number | undefined,
  ): void {
    if (tool !== undefined && isToolOutcome(outcome)) {
      const label = this.tools.has(tool) ? tool : UNKNOWN_TOOL;
      this.toolCalls.inc({ tool: label, outcome });
      if (durationMs !== undefined) this.toolDuration.observe({ tool: label }, durationMs / 1000);
    }
    if (isRefusal(outcome)) this.refusals.inc({ reason: REFUSALS[outcome] });
  }

  auditRecordsNotWritten(count: number): void {
    this.auditFailures.inc(count);
  }

  rateLimited(limit: RateLimitKind): void {
    this.rateLimitRefusals.inc({ limit });
  }

  /** Where a Redis-backed limiter counts now: in Redis, or in this process's memory. */
  rateLimitStoreChanged(store: 'redis' | 'memory'): void {
    this.rateLimitFallback.set(store === 'memory' ? 1 : 0);
    if (store === 'memory') this.rateLimitFallbacks.inc();
  }

  sqlWorkerReplaced(pool: SqlWorkerPoolName, reason: WorkerReplacement): void {
    this.sqlWorkerRestarts.inc({ pool, reason });
  }

  postgresDeadlineExceeded(by: DeadlineStopper): void {
    this.postgresDeadlines.inc({ by });
  }

  postgresBackendTerminated(reason: TerminationReason): void {
    this.postgresTerminations.inc({ reason });
  }

  jwksFetched(ok: boolean): void {
    this.jwksFetches.inc();
    if (!ok) this.jwksFailures.inc();
  }

  introspectionCalled(result: IntrospectionResult): void {
    this.introspectionCalls.inc({ result });
  }

  introspectionCacheHit(): void {
    this.introspectionCacheHits.inc();
  }

  /** Casdoor's introspection began failing (false) or answers again (true). */
  introspectionReachable(reachable: boolean): void {
    this.introspectionUp.set(reachable ? 1 : 0);
  }

  introspectionGraceAccepted(): void {
    this.introspectionGrace.inc();
  }
}
