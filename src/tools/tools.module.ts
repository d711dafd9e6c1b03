import { Module } from '@nestjs/common';
import { AdminTools } from './admin.tools.js';
import { ModifyTools } from './modify.tools.js';
import { QueryTools } from './query.tools.js';

/** The database tools; they speak to DatabaseEngine (DatabaseModule is global). */
@Module({
  providers: [QueryTools, ModifyTools, AdminTools],
})
export class ToolsModule {}
