let requests = 0;

/** A request id (X-Request-Id) no other request of this test process has: `prefix-pid-n`. */
export const nextRequestId = (prefix: string): string => `${prefix}-${process.pid}-${++requests}`;
