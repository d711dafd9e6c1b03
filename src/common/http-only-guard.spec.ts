import { ApplicationConfig } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/internal';
import { startToolHarness, type ToolHarness } from '../../test/support/tool-harness.js';
import { toolContextFor } from '../../test/support/tool-calls.js';
import { JwtAuthGuard } from '../auth/jwt-auth.guard.js';
import { ScopesGuard } from '../auth/scopes.guard.js';
import { TOOL_CONTEXT_TYPE } from '../mcp/tool-context.js';
import { RateLimitGuard } from '../rate-limit/rate-limit.guard.js';
import { isHttpOnlyGuard } from './http-only-guard.js';

/**
 * What @HttpOnlyGuard() promises, over the application's own global guards: a guard it marks,
 * or may mark, says yes at once to a tool call (which the tool pipeline then leaves it out of).
 */
describe('HttpOnlyGuard', () => {
  let harness: ToolHarness;

  beforeAll(async () => {
    harness = await startToolHarness();
  });
  afterAll(() => harness.close());

  function toolCallContext(): ExecutionContextHost {
    const tool = [...harness.registry.tools][0];
    const host = new ExecutionContextHost([{}, toolContextFor(tool)]);
    host.setType(TOOL_CONTEXT_TYPE);
    return host;
  }

  it.each([
    ['JwtAuthGuard', JwtAuthGuard],
    ['RateLimitGuard', RateLimitGuard],
  ])('%s (HTTP only) says yes to a tool call without looking at it', async (_name, type) => {
    const guard = harness.app.get<JwtAuthGuard | RateLimitGuard>(type);
    await expect(guard.canActivate(toolCallContext())).resolves.toBe(true);
  });

  it('is on global guards that say yes to a tool call, and ScopesGuard is not marked', async () => {
    const guards = harness.app.get(ApplicationConfig).getGlobalGuards();
    const marked = guards.filter(isHttpOnlyGuard);
    for (const guard of marked)
      await expect(Promise.resolve(guard.canActivate(toolCallContext()))).resolves.toBe(true);
    expect(guards.some((guard) => guard instanceof ScopesGuard)).toBe(true);
    expect(marked.some((guard) => guard instanceof ScopesGuard)).toBe(false);
  });
});
