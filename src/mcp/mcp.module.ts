import { type MiddlewareConsumer, Module, type NestModule } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { AuditModule } from '../audit/audit.module.js';
import { McpController } from './mcp.controller.js';
import { McpHandlerService } from './mcp-handler.service.js';
import { OriginMiddleware } from './origin.middleware.js';
import { ToolCallPipeline } from './tool-call.js';
import { ToolRegistry } from './tool-registry.js';

@Module({
  imports: [DiscoveryModule, AuditModule],
  controllers: [McpController],
  providers: [ToolRegistry, ToolCallPipeline, McpHandlerService, OriginMiddleware],
  exports: [ToolRegistry, ToolCallPipeline],
})
export class McpModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(OriginMiddleware).forRoutes(McpController);
  }
}
