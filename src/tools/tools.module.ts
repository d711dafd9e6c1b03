import { Module } from '@nestjs/common';
import { DatabaseModule } from '../database/database.module.js';
import { InternalModule } from '../internal/internal.module.js';
import { AdminTools } from './admin.tools.js';
import { ModifyTools } from './modify.tools.js';
import { QueryTools } from './query.tools.js';

@Module({
  imports: [DatabaseModule, InternalModule],
  providers: [QueryTools, ModifyTools, AdminTools],
})
export class ToolsModule {}
