import { portableJsonSchema } from './portable-schema.js';
import {
  Body,
  type CallHandler,
  type CanActivate,
  Catch,
  type ExceptionFilter,
  type ExecutionContext,
  ForbiddenException,
  type INestApplication,
  Injectable,
  type NestInterceptor,
  type PipeTransform,
  type Provider,
  UseFilters,
  UseGuards,
  UseInterceptors,
  UsePipes,
} from '@nestjs/common';
import { APP_INTERCEPTOR, DiscoveryModule } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { map, type Observable } from 'rxjs';
import { recordNestLogs } from '../../test/support/nest-logs.js';
import { echo, toolContextFor, Word, wordTool } from '../../test/support/tool-calls.js';
import { RequireScopes } from '../auth/require-scopes.decorator.js';
import { defineScopes } from '../auth/scopes.js';
import { Metrics } from '../metrics/metrics.service.js';
import { McpTool } from './mcp-tool.decorator.js';
import { TOOL_CONTEXT_TYPE, type ToolContext, type ToolOutput } from './tool-context.js';
import { type RegisteredTool, ToolRegistry } from './tool-registry.js';

const SPEC_SCOPES = defineScopes('registry-spec', {
  read: { name: 'registry:read', title: 'Read fixtures', description: 'Call the reading fixtures' },
  write: {
    name: 'registry:write',
    title: 'Write fixtures',
    description: 'Call the writing fixtures',
  },
  admin: {
    name: 'registry:admin',
    title: 'Administer fixtures',
    description: 'Reset the fixtures',
  },
});

const declared = wordTool;

/** Lets through only words that start with "please"; sees the tool's (input, context). */
@Injectable()
class PoliteGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    return (
      context.getType<string>() === TOOL_CONTEXT_TYPE &&
      context.getArgByIndex<Word>(0).word.startsWith('please')
    );
  }
}

/** Upper-cases the text and names the tool it wrapped. */
@Injectable()
class ShoutInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<ToolOutput<Word>> {
    const { tool } = context.getArgByIndex<ToolContext>(1);
    return next.handle().pipe(
      map((output: ToolOutput<Word>) => ({
        ...output,
        text: `${output.text.toUpperCase()} (${tool})`,
      })),
    );
  }
}

/** A global interceptor: every tool's text gets a "!". */
@Injectable()
class ExclaimInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<ToolOutput<Word>> {
    return next
      .handle()
      .pipe(map((output: ToolOutput<Word>) => ({ ...output, text: `${output.text}!` })));
  }
}

@Catch()
class SwallowFilter implements ExceptionFilter {
  catch(): void {}
}

@Injectable()
class TrimPipe implements PipeTransform<string, string> {
  transform(value: string): string {
    return value.trim();
  }
}

@Injectable()
@RequireScopes(SPEC_SCOPES.read)
class ReadTools {
  guardedRuns = 0;

  @McpTool(declared('echo'))
  echo(input: Word): Promise<ToolOutput<Word>> {
    return echo(input);
  }

  @McpTool(declared('shout'))
  @RequireScopes(SPEC_SCOPES.read, SPEC_SCOPES.write)
  @UseInterceptors(ShoutInterceptor)
  shout(input: Word): Promise<ToolOutput<Word>> {
    return echo(input);
  }

  @McpTool(declared('guarded'))
  @UseGuards(PoliteGuard)
  guarded(input: Word): Promise<ToolOutput<Word>> {
    this.guardedRuns++;
    return echo(input);
  }

  /** Not a tool: no @McpTool. */
  helper(): string {
    return 'not listed';
  }
}

@Injectable()
class AdminTools {
  @McpTool(declared('reset'))
  @RequireScopes(SPEC_SCOPES.admin, SPEC_SCOPES.read)
  reset(input: Word): Promise<ToolOutput<Word>> {
    return echo(input);
  }
}

/** Another token for ReadTools: the same instance, not a second declaration of its tools. */
abstract class ReadToolsAlias {}

/** A class declaring one tool of this name under the read scope, for start-up failures. */
function toolNamed(name: string) {
  @Injectable()
  @RequireScopes(SPEC_SCOPES.read)
  class Named {
    @McpTool(declared(name))
    run(input: Word): Promise<ToolOutput<Word>> {
      return echo(input);
    }
  }
  return Named;
}

@Injectable()
class Unscoped {
  @McpTool(declared('unscoped'))
  run(input: Word): Promise<ToolOutput<Word>> {
    return echo(input);
  }
}

@Injectable()
@RequireScopes(SPEC_SCOPES.read)
class FilteredMethod {
  @McpTool(declared('filtered'))
  @UseFilters(SwallowFilter)
  run(input: Word): Promise<ToolOutput<Word>> {
    return echo(input);
  }
}

@Injectable()
@RequireScopes(SPEC_SCOPES.read)
@UseFilters(SwallowFilter)
class FilteredClass {
  @McpTool(declared('filtered'))
  run(input: Word): Promise<ToolOutput<Word>> {
    return echo(input);
  }
}

@Injectable()
@RequireScopes(SPEC_SCOPES.read)
class Piped {
  @McpTool(declared('piped'))
  @UsePipes(TrimPipe)
  run(input: Word): Promise<ToolOutput<Word>> {
    return echo(input);
  }
}

@Injectable()
@RequireScopes(SPEC_SCOPES.read)
class WithParameterDecorator {
  @McpTool(declared('decorated'))
  run(@Body() input: Word): Promise<ToolOutput<Word>> {
    return echo(input);
  }
}

/** The app with ToolRegistry and these providers, initialised (the registry discovers then). */
async function start(...providers: Provider[]): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [DiscoveryModule],
    providers: [ToolRegistry, Metrics, ...providers],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  try {
    await app.init();
  } catch (error) {
    await app.close();
    throw error;
  }
  return app;
}

describe(ToolRegistry.name, () => {
  describe('with valid tools', () => {
    let app: INestApplication;
    let sut: ToolRegistry;

    beforeAll(async () => {
      app = await start(
        ReadTools,
        AdminTools,
        { provide: ReadToolsAlias, useExisting: ReadTools },
        { provide: APP_INTERCEPTOR, useClass: ExclaimInterceptor },
      );
      sut = app.get(ToolRegistry);
    });
    afterAll(() => app.close());

    const tool = (name: string): RegisteredTool => {
      const found = sut.get(name);
      if (!found) throw new Error(`no tool ${name}`);
      return found;
    };
    const call = (name: string, word: string) =>
      tool(name).handler({ word }, toolContextFor(tool(name)));

    it('finds every @McpTool method of every provider, once (aliases are not providers)', () => {
      expect([...sut.tools].map((t) => [t.name, t.declaredAt])).toEqual([
        ['echo', 'ReadTools.echo'],
        ['shout', 'ReadTools.shout'],
        ['guarded', 'ReadTools.guarded'],
        ['reset', 'AdminTools.reset'],
      ]);
      expect(sut.get('helper')).toBeUndefined();
      expect(sut.get('nothing')).toBeUndefined();
    });

    it("keeps each tool's declaration", () => {
      expect(tool('echo').options).toEqual(declared('echo'));
    });

    it("merges the class's scopes with the method's, each once", () => {
      expect(tool('echo').requiredScopes).toEqual(['registry:read']);
      expect(tool('shout').requiredScopes).toEqual(['registry:read', 'registry:write']);
      expect(tool('reset').requiredScopes).toEqual(['registry:admin', 'registry:read']);
    });

    it('lists the scopes in use, sorted, with their declaration and the tools requiring each', () => {
      expect(sut.scopesSupported()).toEqual(['registry:admin', 'registry:read', 'registry:write']);
      expect(sut.scopes()).toEqual([
        {
          name: 'registry:admin',
          module: 'registry-spec',
          title: 'Administer fixtures',
          description: 'Reset the fixtures',
          tools: ['reset'],
        },
        {
          name: 'registry:read',
          module: 'registry-spec',
          title: 'Read fixtures',
          description: 'Call the reading fixtures',
          tools: ['echo', 'shout', 'guarded', 'reset'],
        },
        {
          name: 'registry:write',
          module: 'registry-spec',
          title: 'Write fixtures',
          description: 'Call the writing fixtures',
          tools: ['shout'],
        },
      ]);
    });

    it('lists its schemas for the SDK without checking values there (the pipeline checks)', async () => {
      const { inputSchema, outputSchema } = tool('echo');
      const sent = { word: 42 };

      await expect(Promise.resolve(inputSchema['~standard'].validate(sent))).resolves.toEqual({
        value: sent,
      });
      await expect(Promise.resolve(outputSchema['~standard'].validate(sent))).resolves.toEqual({
        value: sent,
      });
      expect(inputSchema['~standard'].jsonSchema.input({ target: 'draft-2020-12' })).toEqual(
        portableJsonSchema(Word['~standard'].jsonSchema.input({ target: 'draft-2020-12' })),
      );
    });

    it('runs the method with (input, context), through the global interceptors', async () => {
      await expect(call('echo', 'hello')).resolves.toEqual({
        data: { word: 'hello' },
        text: 'hello!',
      });
    });

    it("applies the method's @UseInterceptors, inside the global ones", async () => {
      await expect(call('shout', 'hello')).resolves.toEqual({
        data: { word: 'hello' },
        text: 'HELLO (shout)!',
      });
    });

    it("applies the method's @UseGuards: a refusal throws, and the method does not run", async () => {
      const instance = app.get(ReadTools);
      const before = instance.guardedRuns;

      await expect(call('guarded', 'now')).rejects.toThrow(ForbiddenException);
      expect(instance.guardedRuns).toBe(before);
      await expect(call('guarded', 'please')).resolves.toMatchObject({ text: 'please!' });
      expect(instance.guardedRuns).toBe(before + 1);
    });
  });

  it('logs what it found at start-up', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [DiscoveryModule],
      providers: [ToolRegistry, Metrics, AdminTools],
    }).compile();
    const logs = recordNestLogs();
    const app = moduleRef.createNestApplication();
    try {
      await app.init();
      await app.close();
    } finally {
      logs.restore();
    }

    expect(logs.lines).toContainEqual({
      level: 'log',
      message: '1 tools; scopes: registry:admin (registry-spec) registry:read (registry-spec)',
      context: ToolRegistry.name,
    });
  });

  describe('refuses to start', () => {
    it.each(['run query', '', 'x'.repeat(65), 'caf\u00e9', 'a/b'])(
      'for the tool name %j',
      async (name) => {
        await expect(start(toolNamed(name))).rejects.toThrow(
          new Error(`Named.run: invalid tool name "${name}"`),
        );
      },
    );

    it('accepts names of letters, digits, _ . - up to 64 characters', async () => {
      const name = `db.query_v2-${'x'.repeat(52)}`;
      const app = await start(toolNamed(name));
      try {
        expect(app.get(ToolRegistry).get(name)?.declaredAt).toBe('Named.run');
      } finally {
        await app.close();
      }
    });

    it('for a tool name declared twice, naming both places', async () => {
      await expect(start(ReadTools, toolNamed('echo'))).rejects.toThrow(
        new Error('Named.run: tool "echo" is declared twice (also by ReadTools.echo)'),
      );
    });

    it('for a tool without @RequireScopes on its method or class', async () => {
      await expect(start(Unscoped)).rejects.toThrow(
        new Error('Unscoped.run: tool "unscoped" declares no scope; add @RequireScopes(...)'),
      );
    });

    it.each([
      ['its method', FilteredMethod],
      ['its class', FilteredClass],
    ])('for @UseFilters on %s', async (_where, fixture) => {
      await expect(start(fixture)).rejects.toThrow(
        new Error(
          `${fixture.name}.run: @UseFilters is not applied to MCP tools ` +
            "(a tool's failures become isError results: throw ToolError, or map errors in an interceptor); remove it",
        ),
      );
    });

    it('for @UsePipes', async () => {
      await expect(start(Piped)).rejects.toThrow(
        new Error(
          'Piped.run: @UsePipes is not applied to MCP tools ' +
            '(its input schema (zod) validates and transforms its arguments); remove it',
        ),
      );
    });

    it('for a parameter decorator', async () => {
      await expect(start(WithParameterDecorator)).rejects.toThrow(
        new Error(
          'WithParameterDecorator.run: parameter decorators are not applied to MCP tools: ' +
            'a tool method takes (input, context: ToolContext)',
        ),
      );
    });
  });
});
