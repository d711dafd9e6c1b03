import {
  type CanActivate,
  ForbiddenException,
  type NestInterceptor,
  type Type,
} from '@nestjs/common';
import type { ApplicationConfig, ModulesContainer, NestContainer } from '@nestjs/core';
import {
  ExecutionContextHost,
  FORBIDDEN_MESSAGE,
  GuardsContextCreator,
  InterceptorsConsumer,
  InterceptorsContextCreator,
} from '@nestjs/core/internal';
import { isObservable, lastValueFrom } from 'rxjs';
import { isHttpOnlyGuard } from '../common/http-only-guard.js';
import { hasPromiseForm, type PromiseInterceptor } from './promise-interceptor.js';
import { TOOL_CONTEXT_TYPE, type ToolContext, type ToolOutput } from './tool-context.js';

/** A tool method behind its guards and interceptors, as ToolCallPipeline calls it. */
export type ToolHandler = (input: unknown, context: ToolContext) => Promise<ToolOutput<object>>;

type Method = (...args: unknown[]) => unknown;

/** Where a tool method is declared: its provider, the method, and the module providing it. */
export interface ToolHost {
  instance: object;
  handler: Method;
  moduleKey: string;
}

/** A guard's or interceptor's answer as Nest settles it: awaited, an Observable's last value. */
async function settled(value: unknown): Promise<unknown> {
  const awaited: unknown = await value;
  return isObservable(awaited) ? lastValueFrom(awaited) : awaited;
}

/**
 * Binds each tool method to its guards and interceptors once, at start-up: global (APP_GUARD,
 * APP_INTERCEPTOR, useGlobal*), class, then method, resolved by Nest's own context creators as
 * ExternalContextCreator resolves them. Per call it then does only the call's own work:
 * - each guard's `canActivate` once, on one ExecutionContextHost of type TOOL_CONTEXT_TYPE,
 *   awaited only when it is not a boolean; a guard marked @HttpOnlyGuard() is left out (it
 *   says yes to anything but HTTP); `false` is Nest's ForbiddenException('Forbidden resource');
 * - the interceptors as a chain of promises when each has a promise form (PromiseInterceptor),
 *   else through Nest's InterceptorsConsumer, as ExternalContextCreator runs them.
 */
export class ToolInvokers {
  private readonly guards: GuardsContextCreator;
  private readonly interceptors: InterceptorsContextCreator;
  private readonly consumer = new InterceptorsConsumer();

  constructor(
    private readonly modules: ModulesContainer,
    config: ApplicationConfig,
  ) {
    // The context creators read only the modules from the container.
    const container = { getModules: () => modules } as Pick<NestContainer, 'getModules'>;
    this.guards = new GuardsContextCreator(container as NestContainer, config);
    this.interceptors = new InterceptorsContextCreator(container as NestContainer, config);
  }

  /** The guards and interceptors Nest applies to this method, in Nest's order. */
  enhancersOf({ instance, handler, moduleKey }: ToolHost): {
    guards: CanActivate[];
    interceptors: NestInterceptor[];
  } {
    // As ExternalContextCreator: transient enhancers of an entry provider belong to it.
    const inquirerId = this.modules
      .get(moduleKey)
      ?.entryProviders.find(
        (wrapper) => wrapper.token === instance.constructor || wrapper.instance === instance,
      )?.id;
    return {
      guards: this.guards.create(instance, handler, moduleKey, undefined, inquirerId),
      interceptors: this.interceptors.create(instance, handler, moduleKey, undefined, inquirerId),
    };
  }

  create(host: ToolHost): ToolHandler {
    const { instance, handler } = host;
    const { guards: all, interceptors } = this.enhancersOf(host);
    const guards = all.filter((guard) => !isHttpOnlyGuard(guard));
    const run = async (args: unknown[]): Promise<unknown> => settled(handler.apply(instance, args));
    const intercepted = interceptors.every(hasPromiseForm)
      ? promiseChain(interceptors, run)
      : (_context: ExecutionContextHost, args: unknown[]) =>
          this.consumer
            .intercept(interceptors, args, instance, handler, () => run(args), TOOL_CONTEXT_TYPE)
            .then(settled);

    return async (input, call) => {
      const args = [input, call];
      const context = new ExecutionContextHost(args, instance.constructor as Type, handler);
      context.setType(TOOL_CONTEXT_TYPE);
      for (const guard of guards) {
        const verdict = guard.canActivate(context);
        if (typeof verdict === 'boolean' ? !verdict : !(await settled(verdict)))
          throw new ForbiddenException(FORBIDDEN_MESSAGE);
      }
      return intercepted(context, args) as Promise<ToolOutput<object>>;
    };
  }
}

/** The interceptors as nested promises, the first outermost (Nest's order). */
function promiseChain(
  interceptors: PromiseInterceptor[],
  run: (args: unknown[]) => Promise<unknown>,
): (context: ExecutionContextHost, args: unknown[]) => Promise<unknown> {
  return (context, args) => {
    const next = (index: number): Promise<unknown> =>
      index === interceptors.length
        ? run(args)
        : interceptors[index].interceptAsync(context, () => next(index + 1));
    return next(0);
  };
}
