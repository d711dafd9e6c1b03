import { SetMetadata } from '@nestjs/common';

export const IS_PUBLIC_KEY = 'scopedb:is-public';

/** Opts a route out of the global JWT guard. Everything else requires a valid token. */
export const Public = () => SetMetadata(IS_PUBLIC_KEY, true);
