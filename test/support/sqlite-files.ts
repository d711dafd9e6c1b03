import Database from 'better-sqlite3';

/** Reads a SQLite file through a read-only connection of the test's own. */
export function readSqlite<T>(path: string, read: (db: Database.Database) => T): T {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

/** The tables in a SQLite file, SQLite's own (sqlite_*) left out, by name. */
export function tableNames(path: string): string[] {
  return readSqlite(path, (db) =>
    db
      .prepare<[], string>(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
      )
      .pluck()
      .all(),
  );
}
