import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DatabaseModule } from '../database/database.module.js';
import { MigrationRecord } from '../database/migration-record.entity.js';
import { SqlExecutor } from '../database/sql-executor.js';
import { AdminTools } from './admin.tools.js';
import { ModifyTools } from './modify.tools.js';
import { QueryTools } from './query.tools.js';

@Module({
  imports: [DatabaseModule, TypeOrmModule.forFeature([MigrationRecord])],
  providers: [SqlExecutor, QueryTools, ModifyTools, AdminTools],
})
export class ToolsModule {}
