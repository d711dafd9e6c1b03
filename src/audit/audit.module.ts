import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuditRecord } from './audit-record.entity.js';
import { AuditService } from './audit.service.js';
import { AuditTools } from './audit.tools.js';

@Module({
  imports: [TypeOrmModule.forFeature([AuditRecord])],
  providers: [AuditService, AuditTools],
  exports: [AuditService],
})
export class AuditModule {}
