import { defineScopes } from '../auth/scopes.js';

/** The database tools' scopes (and the audit log's reader, `db:admin`). */
export const DATABASE_SCOPES = defineScopes('database', {
  query: {
    name: 'db:query',
    title: 'Read the database',
    description: 'List tables, describe them and run read-only queries',
  },
  modify: {
    name: 'db:modify',
    title: 'Change data',
    description: 'Insert, update and delete rows',
  },
  admin: {
    name: 'db:admin',
    title: 'Change the schema',
    description: 'Create, alter and drop tables and indexes; read the audit log',
  },
});
