import { defineScopes } from '../../auth/scopes.js';

/** The example module's one scope: declared once, so `REPORT_SCOPES.raed` does not compile. */
export const REPORT_SCOPES = defineScopes('reports', {
  read: {
    name: 'reports:read',
    title: 'Read sales reports',
    description: 'Run the reviewed sales reports (revenue by month, top customers), nothing else',
  },
});
