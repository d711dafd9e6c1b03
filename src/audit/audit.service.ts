import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import type { Repository } from 'typeorm';
import type { Principal } from '../auth/principal.js';
import { AuditRecord, type AuditOutcome } from './audit-record.entity.js';

export interface AuditEvent {
  outcome: AuditOutcome;
  principal?: Principal;
  /** Claims read from a token that failed verification: who it claimed to be. */
  claimed?: { subject?: string; clientId?: string; tokenId?: string };
  tool?: string;
  reason?: string;
  requiredScopes?: readonly string[];
  durationMs?: number;
  requestId?: string;
  remoteAddress?: string;
}

const clip = (text: string | undefined, max: number) =>
  text === undefined ? null : text.length > max ? `${text.slice(0, max - 1)}…` : text;

/** The one writer of the audit trail, shared by the tool interceptor and the challenge filter. */
@Injectable()
export class AuditService {
  private readonly logger = new Logger(AuditService.name);

  constructor(@InjectRepository(AuditRecord) private readonly records: Repository<AuditRecord>) {}

  async record(event: AuditEvent): Promise<void> {
    const { principal, claimed } = event;
    const row: Omit<AuditRecord, 'id'> = {
      time: new Date().toISOString(),
      requestId: clip(event.requestId, 64),
      subject: clip(principal?.subject ?? claimed?.subject, 255),
      subjectUnverified: !principal && claimed?.subject !== undefined,
      clientId: clip(principal?.clientId ?? claimed?.clientId, 255),
      tokenId: clip(principal?.tokenId ?? claimed?.tokenId, 255),
      tool: clip(event.tool, 128),
      outcome: event.outcome,
      reason: clip(event.reason, 2000),
      requiredScopes: event.requiredScopes ? clip(event.requiredScopes.join(' '), 512) : null,
      grantedScopes: principal ? clip([...principal.scopes].join(' '), 1024) : null,
      durationMs: event.durationMs === undefined ? null : Math.round(event.durationMs),
      remoteAddress: clip(event.remoteAddress, 64),
    };
    try {
      await this.records.insert(row);
    } catch (error) {
      this.logger.error(
        `Audit record could not be written (${row.outcome} ${row.tool ?? ''}): ${
          error instanceof Error ? error.message : String(error)
        }`,
      );
    }
  }

  /** Most recent first; for operators and tests. */
  recent(limit = 100): Promise<AuditRecord[]> {
    return this.records.find({ order: { id: 'DESC' }, take: limit });
  }
}
