import { SetMetadata } from '@nestjs/common';
import type { ToolAnnotations } from '@modelcontextprotocol/server';
import type { z } from 'zod';

export const MCP_TOOL_KEY = 'scopedb:mcp-tool';

export interface McpToolOptions {
  name: string;
  title: string;
  description: string;
  input: z.ZodObject;
  output: z.ZodObject;
  annotations: ToolAnnotations & { readOnlyHint: boolean; destructiveHint: boolean };
}

/**
 * Exposes a provider method as an MCP tool. The method runs through Nest's guard and interceptor
 * pipeline like a route handler, receiving `(input, context: ToolContext)`; it needs
 * @RequireScopes on itself or its class.
 */
export const McpTool = (options: McpToolOptions) => SetMetadata(MCP_TOOL_KEY, options);
