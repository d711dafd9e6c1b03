import { SetMetadata } from '@nestjs/common';

export const SKIP_RATE_LIMIT_KEY = 'scopedb:skip-rate-limit';

/** Opts a controller or route out of the global rate limit (probes, discovery documents). */
export const SkipRateLimit = () => SetMetadata(SKIP_RATE_LIMIT_KEY, true);
