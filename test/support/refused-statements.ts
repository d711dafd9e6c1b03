/**
 * Statements that `execute` refuses for what they are, whatever the tables: what each is, its SQL
 * (reading `table`) and the code its refusal names.
 */
export const notWrites = (table: string): [string, string, string][] => [
  ['SELECT', `SELECT * FROM ${table}`, 'NOT_A_WRITE'],
  ['DDL', `DROP TABLE ${table}`, 'NOT_A_WRITE'],
  ['stacked statements', `DELETE FROM ${table}; DELETE FROM ${table}`, 'MULTIPLE_STATEMENTS'],
  ['BEGIN', 'BEGIN', 'BEGIN_NOT_ALLOWED'],
  ['COMMIT', 'COMMIT', 'COMMIT_NOT_ALLOWED'],
  ['a PRAGMA', 'PRAGMA foreign_keys = OFF', 'PRAGMA_NOT_ALLOWED'],
];
