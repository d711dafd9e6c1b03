/** The database scopes as the Casdoor application declares them (README, "Setting up Casdoor"). */
export interface ScopeText {
  displayName: string;
  description: string;
}

export const DATABASE_SCOPES: Readonly<Record<string, ScopeText>> = {
  'db:query': {
    displayName: 'Read the database',
    description: 'List tables, describe them and run read-only queries',
  },
  'db:modify': {
    displayName: 'Change data',
    description: 'Insert, update and delete rows',
  },
  'db:admin': {
    displayName: 'Change the schema',
    description: 'Create, alter and drop tables and indexes; read the audit log',
  },
};

export const DATABASE_SCOPE_NAMES = Object.keys(DATABASE_SCOPES);

/** OpenID Connect scopes a client may add to its request (MCP clients add offline_access). */
export const OIDC_SCOPES: Readonly<Record<string, ScopeText>> = {
  openid: { displayName: 'Sign you in', description: 'Know who you are (your user id)' },
  profile: { displayName: 'Your profile', description: 'Your name and display name' },
  email: { displayName: 'Your email address', description: 'Your email address' },
  offline_access: {
    displayName: 'Stay connected',
    description: 'Keep access while you are away, by refreshing its tokens',
  },
};

export function describeScope(scope: string): ScopeText {
  return (
    DATABASE_SCOPES[scope] ??
    OIDC_SCOPES[scope] ?? { displayName: scope, description: 'A scope this server does not know' }
  );
}
