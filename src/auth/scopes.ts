import { SCOPE_TOKEN } from '../config/settings.js';

declare const DECLARED: unique symbol;

/**
 * An OAuth scope declared with defineScopes. A plain string is not one, so a misspelt scope in
 * `@RequireScopes(...)` is a compile error instead of a new scope nobody can hold.
 */
export type Scope<Name extends string = string> = Name & { readonly [DECLARED]: true };

/** How a scope is shown to the people who grant it (consent pages, the README, Casdoor). */
export interface ScopeText {
  /** The scope itself, e.g. `reports:read` (an RFC 6749 scope-token). */
  name: string;
  title: string;
  description: string;
}

/** A declared scope and the feature module that declared it. */
export interface ScopeDeclaration extends ScopeText {
  module: string;
}

const declarations = new Map<string, ScopeDeclaration>();

function sameDeclaration(a: ScopeDeclaration, b: ScopeDeclaration): boolean {
  return (
    a.name === b.name &&
    a.module === b.module &&
    a.title === b.title &&
    a.description === b.description
  );
}

/**
 * Declares a feature module's scopes, once, as typed constants:
 * `export const REPORT_SCOPES = defineScopes('reports', { read: { name: 'reports:read', ... } })`,
 * then `@RequireScopes(REPORT_SCOPES.read)`. A malformed scope, or one declared twice with other
 * words, fails when the module is loaded.
 */
export function defineScopes<const T extends Record<string, ScopeText>>(
  module: string,
  scopes: T,
): { readonly [K in keyof T]: Scope<T[K]['name']> } {
  if (!/^[a-z][a-z0-9-]*$/.test(module))
    throw new Error(`defineScopes(): "${module}" is not a module name (a-z, 0-9, -)`);
  const typed: Record<string, string> = {};
  for (const [key, text] of Object.entries(scopes)) {
    if (!SCOPE_TOKEN.test(text.name))
      throw new Error(`defineScopes(${module}): "${text.name}" is not a valid OAuth scope`);
    if (!text.title.trim() || !text.description.trim())
      throw new Error(`defineScopes(${module}): ${text.name} needs a title and a description`);
    const declaration: ScopeDeclaration = { ...text, module };
    const earlier = declarations.get(text.name);
    if (earlier && !sameDeclaration(earlier, declaration))
      throw new Error(
        `defineScopes(${module}): ${text.name} is already declared by the ${earlier.module} module`,
      );
    declarations.set(text.name, declaration);
    typed[key] = text.name;
  }
  return Object.freeze(typed) as { readonly [K in keyof T]: Scope<T[K]['name']> };
}

/** The declaration of a scope, if one was made (by any module loaded in this process). */
export function scopeDeclaration(scope: string): ScopeDeclaration | undefined {
  return declarations.get(scope);
}
