/** The sandbox's demo users: what a Casdoor organization with two members would hold. */
export interface DemoUser {
  /** Casdoor's `id`, the token's `sub`. */
  id: string;
  /** Casdoor's `name`, typed at the login page. */
  name: string;
  displayName: string;
  email: string;
  password: string;
  /**
   * The server's scopes this user may grant to a client (Casdoor: the user's permissions): `all`,
   * whatever modules are on, or these.
   */
  scopes: 'all' | readonly string[];
}

export const DEMO_USERS: readonly DemoUser[] = [
  {
    id: '3f1c2a9e-6b7d-4e21-9a0b-5c8d7e6f1a2b',
    name: 'alice',
    displayName: 'Alice (every scope)',
    email: 'alice@example.com',
    password: 'alice-demo',
    scopes: 'all',
  },
  {
    id: '8b0e4d2c-1a3f-4c5e-9d7b-2e6f8a0c4b1d',
    name: 'bob',
    displayName: 'Bob (read-only)',
    email: 'bob@example.com',
    password: 'bob-demo',
    scopes: ['db:query'],
  },
];

export function userById(id: string): DemoUser | undefined {
  return DEMO_USERS.find((user) => user.id === id);
}

export function authenticate(name: string, password: string): DemoUser | undefined {
  return DEMO_USERS.find((user) => user.name === name && user.password === password);
}

/** Whether `user` may grant `scope`, one of the server's scopes (OIDC scopes are anyone's). */
export function mayGrant(user: DemoUser, scope: string): boolean {
  return user.scopes === 'all' || user.scopes.includes(scope);
}

/** The scopes of `offered` that `user` may grant. */
export function grantableScopes(user: DemoUser, offered: readonly string[]): string[] {
  return offered.filter((scope) => mayGrant(user, scope));
}
