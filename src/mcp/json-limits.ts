/**
 * Limits on the shape of the JSON a request carries, checked without recursion (an explicit
 * stack), so that no nesting can exhaust the call stack: the checks run before anything
 * recursive (JSON.stringify, schema validation, hashing) touches a request.
 */

/** Deepest nesting of arrays and objects accepted anywhere in a request. */
export const MAX_JSON_DEPTH = 64;

/** Keys refused in every object a tool takes: they would reach or replace a prototype. */
export const RESERVED_KEYS: ReadonlySet<string> = new Set([
  '__proto__',
  'constructor',
  'prototype',
]);

const isContainer = (value: unknown): value is object =>
  typeof value === 'object' && value !== null;

/** Whether arrays and objects nest deeper than `max` levels (`[]` is one level, `[[]]` two). */
export function exceedsDepth(value: unknown, max = MAX_JSON_DEPTH): boolean {
  const stack: [value: object, depth: number][] = isContainer(value) ? [[value, 1]] : [];
  for (let top = stack.pop(); top; top = stack.pop()) {
    const [container, depth] = top;
    if (depth > max) return true;
    for (const child of Object.values(container))
      if (isContainer(child)) stack.push([child, depth + 1]);
  }
  return false;
}

interface Visit {
  value: object;
  key: string | undefined;
  parent: Visit | undefined;
}

function pathOf(visit: Visit, key: string): string {
  const keys = [key];
  for (let at: Visit | undefined = visit; at?.key !== undefined; at = at.parent) keys.push(at.key);
  return keys.reverse().join('.');
}

/**
 * Why these tool arguments are refused before any schema sees them: a reserved key
 * (`__proto__`, `constructor`, `prototype`) in any object, at any depth, or nesting deeper than
 * MAX_JSON_DEPTH. Undefined when they pass. The message names the path, as schema issues do.
 */
export function refusedArguments(args: unknown): string | undefined {
  if (exceedsDepth(args)) return `nested deeper than ${MAX_JSON_DEPTH} levels`;
  const stack: Visit[] = isContainer(args)
    ? [{ value: args, key: undefined, parent: undefined }]
    : [];
  for (let visit = stack.pop(); visit; visit = stack.pop()) {
    for (const [key, child] of Object.entries(visit.value)) {
      if (!Array.isArray(visit.value) && RESERVED_KEYS.has(key))
        return `${pathOf(visit, key)}: the key "${key}" is not accepted (nor are ${[...RESERVED_KEYS].join(', ')}, in any object)`;
      if (isContainer(child)) stack.push({ value: child, key, parent: visit });
    }
  }
  return undefined;
}
