import { HttpException, HttpStatus } from '@nestjs/common';

/** Thrown by RateLimitGuard; RateLimitFilter turns it into the 429 answer. */
export class RateLimitExceededException extends HttpException {
  constructor(
    /** Seconds until the caller's window resets. */
    readonly retryAfterS: number,
    /** The budget spent: a principal's or an IP address's. */
    readonly tracker: string,
  ) {
    super('Too Many Requests', HttpStatus.TOO_MANY_REQUESTS);
  }
}
