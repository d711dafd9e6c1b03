import { Module } from '@nestjs/common';
import { auditDatabaseProvider, AuditDatabase } from './audit-database.js';
import { AuditService } from './audit.service.js';
import { AuditTools } from './audit.tools.js';

@Module({
  providers: [auditDatabaseProvider, AuditService, AuditTools],
  exports: [AuditService, AuditDatabase],
})
export class AuditModule {}
