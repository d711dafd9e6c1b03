import { SetMetadata } from '@nestjs/common';
import type { ToolAnnotations } from '@modelcontextprotocol/server';
import type { z } from 'zod';
import type { ToolContext, ToolOutput } from './tool-context.js';

export const MCP_TOOL_KEY = 'scopedb:mcp-tool';

/** The names of T's fields whose values are of type V. */
type FieldsOf<T, V> = { [K in keyof T]-?: NonNullable<T[K]> extends V ? K : never }[keyof T] &
  string;

/** The names of the fields a tool's audit records are read from (see ToolAuditFields). */
export interface AuditFieldNames {
  statement?: string;
  params?: string;
  table?: string;
  rowCount?: string;
}

/**
 * What the audit record of a call carries beyond who, which tool, outcome and time: the input
 * fields holding the statement it runs, its bound parameters (stored only as a hash) and the
 * table it names, and the output field counting the rows it read or changed. Field names are
 * checked against the tool's schemas at compile time; the interceptor knows no field name.
 */
export interface ToolAuditFields<Input, Output> extends AuditFieldNames {
  statement?: FieldsOf<Input, string>;
  params?: keyof Input & string;
  table?: FieldsOf<Input, string>;
  rowCount?: FieldsOf<Output, number>;
}

export interface McpToolOptions<
  I extends z.ZodObject = z.ZodObject,
  O extends z.ZodObject = z.ZodObject,
> {
  name: string;
  title: string;
  description: string;
  input: I;
  output: O;
  annotations: ToolAnnotations & { readOnlyHint: boolean; destructiveHint: boolean };
  /** What its audit records carry from its input and output; by default none of them. */
  audit?: ToolAuditFields<z.input<I>, z.output<O>>;
}

/** The annotations of a tool that only reads (a closed world: the database, nothing beyond it). */
export const READ_ONLY_TOOL = {
  readOnlyHint: true,
  destructiveHint: false,
  idempotentHint: true,
  openWorldHint: false,
} as const;

/** The method an @McpTool decorates: `(input, context)` to its structured result and text. */
export type McpToolMethod<I extends z.ZodObject, O extends z.ZodObject> = (
  input: z.output<I>,
  context: ToolContext,
) => Promise<ToolOutput<z.input<O>>>;

/**
 * Exposes a provider method as an MCP tool. The method runs through Nest's guard and interceptor
 * pipeline like a route handler, receiving `(input, context: ToolContext)`; it needs
 * @RequireScopes on itself or its class. Its parameter and result types are checked against the
 * input and output schemas: a drift between them is a compile error.
 */
export function McpTool<I extends z.ZodObject, O extends z.ZodObject>(
  options: McpToolOptions<I, O>,
) {
  return <M extends McpToolMethod<I, O>>(
    target: object,
    key: string | symbol,
    descriptor: TypedPropertyDescriptor<M>,
  ): void => {
    SetMetadata(MCP_TOOL_KEY, options)(target, key, descriptor);
  };
}
