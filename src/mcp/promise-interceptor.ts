import type { ExecutionContext, NestInterceptor } from '@nestjs/common';

/**
 * An interceptor that also has a promise form, for handlers that are async functions: the tool
 * pipeline chains promises instead of Observables when every interceptor of a tool has one.
 * `interceptAsync` must behave as `intercept` does, `next()` running the rest of the chain (and
 * the method) once per call, as `next.handle()` does once subscribed.
 */
export interface PromiseInterceptor extends NestInterceptor {
  interceptAsync(context: ExecutionContext, next: () => Promise<unknown>): Promise<unknown>;
}

export function hasPromiseForm(interceptor: NestInterceptor): interceptor is PromiseInterceptor {
  return typeof (interceptor as Partial<PromiseInterceptor>).interceptAsync === 'function';
}
