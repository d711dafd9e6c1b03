import { Module } from '@nestjs/common';
import { McpModule } from '../mcp/mcp.module.js';
import { WellKnownController } from './well-known.controller.js';

@Module({
  imports: [McpModule],
  controllers: [WellKnownController],
})
export class WellKnownModule {}
