import { Reflector } from '@nestjs/core';
import { z } from 'zod';
import { MCP_TOOL_KEY, McpTool, type McpToolOptions } from './mcp-tool.decorator.js';
import type { ToolOutput } from './tool-context.js';

const Input = z.object({
  sql: z.string(),
  params: z.array(z.unknown()).optional(),
  limit: z.number(),
});
const Output = z.object({ rows: z.number(), note: z.string() });
type Result = ToolOutput<z.input<typeof Output>>;

const options = {
  name: 'typed',
  title: 'Typed',
  description: 'A tool whose types follow its schemas',
  input: Input,
  output: Output,
  annotations: { readOnlyHint: true, destructiveHint: false },
  audit: { statement: 'sql', params: 'params', rowCount: 'rows' },
} satisfies McpToolOptions<typeof Input, typeof Output>;

const result: Result = { data: { rows: 1, note: 'one' }, text: 'one row' };

describe(McpTool.name, () => {
  const sut = McpTool;

  it('records its declaration as metadata of the method, for the registry', () => {
    class Tools {
      @sut(options)
      run(this: void, input: z.output<typeof Input>): Promise<Result> {
        return Promise.resolve({ ...result, text: input.sql });
      }
    }

    expect(new Reflector().get<McpToolOptions>(MCP_TOOL_KEY, Tools.prototype.run)).toBe(options);
  });

  it('checks the method and the audit fields against the schemas at compile time', () => {
    // Each @ts-expect-error fails `npm run typecheck` if the decorator stops refusing it.
    class Drifted {
      // @ts-expect-error the input parameter is not the input schema's output
      @sut(options)
      input(this: void, input: { sql: number }): Promise<Result> {
        return Promise.resolve({ ...result, text: String(input.sql) });
      }

      // @ts-expect-error the result is not the output schema's input
      @sut(options)
      output(this: void): Promise<ToolOutput<{ rows: string }>> {
        return Promise.resolve({ data: { rows: 'one' }, text: 'one' });
      }

      @sut({
        ...options,
        // @ts-expect-error a statement field must be a string field of the input
        audit: { statement: 'limit' },
      })
      statement(this: void): Promise<Result> {
        return Promise.resolve(result);
      }

      @sut({
        ...options,
        // @ts-expect-error a row count field must be a number field of the output
        audit: { rowCount: 'note' },
      })
      rowCount(this: void): Promise<Result> {
        return Promise.resolve(result);
      }

      @sut({
        ...options,
        // @ts-expect-error a params field must be a field of the input
        audit: { params: 'values' },
      })
      params(this: void): Promise<Result> {
        return Promise.resolve(result);
      }
    }

    expect(Object.getOwnPropertyNames(Drifted.prototype)).toHaveLength(6);
  });
});
