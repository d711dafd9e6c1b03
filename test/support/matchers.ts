/**
 * Jest's asymmetric matchers, typed `unknown` rather than `any` so that they nest in object
 * literals under @typescript-eslint/no-unsafe-assignment.
 */
export const match = {
  any: (type: abstract new (...args: never[]) => unknown): unknown => expect.any(type),
  objectContaining: (object: Record<string, unknown>): unknown => expect.objectContaining(object),
  arrayContaining: (array: readonly unknown[]): unknown => expect.arrayContaining(array),
  stringContaining: (text: string): unknown => expect.stringContaining(text),
  stringMatching: (pattern: RegExp): unknown => expect.stringMatching(pattern),
};
