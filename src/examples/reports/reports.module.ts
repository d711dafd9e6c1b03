import { Module } from '@nestjs/common';
import { ReportsTools } from './reports.tools.js';

/**
 * The worked example extension: a feature module whose providers declare @McpTool methods. The
 * tool registry finds them; scopes, the 403 step-up, `scopes_supported` and the audit come with
 * them. Served with REPORTS_EXAMPLE=true (`npm run dev` turns it on).
 */
@Module({ providers: [ReportsTools] })
export class ReportsModule {}
