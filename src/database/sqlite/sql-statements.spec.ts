import Database from 'better-sqlite3';
import {
  checkConstraints,
  leadingKeyword,
  splitStatements,
  stripLeadingComments,
} from './sql-statements.js';

describe(splitStatements.name, () => {
  const sut = splitStatements;

  it('splits at top-level semicolons and trims each statement', () => {
    expect(sut('CREATE TABLE a (x);\n  CREATE TABLE b (y)  ;\nDROP TABLE a')).toEqual([
      'CREATE TABLE a (x)',
      'CREATE TABLE b (y)',
      'DROP TABLE a',
    ]);
  });

  it('drops empty pieces and pieces made only of comments', () => {
    expect(sut(';; CREATE TABLE a (x) ;  ;\n-- the end;\n/* really; */')).toEqual([
      'CREATE TABLE a (x)',
    ]);
    expect(sut('   ')).toEqual([]);
    expect(sut('-- nothing; at all')).toEqual([]);
  });

  it('keeps semicolons inside single- and double-quoted text, including doubled quotes', () => {
    expect(sut(`INSERT INTO t VALUES ('a;b', 'it''s; fine'); SELECT "x;""y" FROM t`)).toEqual([
      `INSERT INTO t VALUES ('a;b', 'it''s; fine')`,
      'SELECT "x;""y" FROM t',
    ]);
  });

  it('keeps semicolons inside [bracket] and `backtick` identifiers, including doubled backticks', () => {
    expect(sut('CREATE TABLE [a;b] (x); CREATE TABLE `c;d` (`y``;z`); DROP TABLE e')).toEqual([
      'CREATE TABLE [a;b] (x)',
      'CREATE TABLE `c;d` (`y``;z`)',
      'DROP TABLE e',
    ]);
  });

  it('ignores semicolons in -- and /* */ comments', () => {
    expect(
      sut('-- one; two\nCREATE TABLE a (x /* a; b */); /* three; */ CREATE TABLE b (y) -- four;\n'),
    ).toEqual([
      '-- one; two\nCREATE TABLE a (x /* a; b */)',
      '/* three; */ CREATE TABLE b (y) -- four;',
    ]);
  });

  it('does not split inside an unterminated quote or comment', () => {
    expect(sut("SELECT 'open; quote")).toEqual(["SELECT 'open; quote"]);
    expect(sut('SELECT 1 /* open; comment')).toEqual(['SELECT 1 /* open; comment']);
  });

  it('keeps a CREATE TRIGGER body, with a CASE ... END inside, as one statement', () => {
    const trigger = `CREATE TRIGGER audit_a AFTER INSERT ON a BEGIN
  UPDATE b SET label = CASE WHEN NEW.x > 0 THEN 'positive;' ELSE 'other' END;
  INSERT INTO log (x) VALUES (NEW.x);
END`;
    expect(sut(`${trigger};\nCREATE INDEX a_x ON a (x);`)).toEqual([
      trigger,
      'CREATE INDEX a_x ON a (x)',
    ]);
  });

  it('recognises a temporary trigger after a comment, in lower case', () => {
    const trigger =
      "/* guard */ create temp trigger no_delete before delete on a for each row begin select raise(abort, 'no; never'); end";
    expect(sut(`${trigger}; drop table b`)).toEqual([trigger, 'drop table b']);
  });

  it('keeps a trigger body whole when it writes a column named end', () => {
    const trigger =
      'CREATE TRIGGER close_event AFTER INSERT ON events BEGIN UPDATE events SET end = NEW.start WHERE end IS NULL; END';
    expect(sut(`${trigger}; CREATE TABLE c (z)`)).toEqual([trigger, 'CREATE TABLE c (z)']);
  });

  it('treats a BEGIN that opens no trigger as a statement of its own', () => {
    expect(sut('BEGIN; CREATE TABLE a (x); COMMIT;')).toEqual([
      'BEGIN',
      'CREATE TABLE a (x)',
      'COMMIT',
    ]);
  });

  it('yields statements that SQLite prepares one at a time', () => {
    const script = `
      -- schema; with a trigger
      CREATE TABLE events (id INTEGER PRIMARY KEY, start TEXT, end TEXT, kind TEXT);
      CREATE TABLE log ("what;" TEXT);
      CREATE TRIGGER events_log AFTER INSERT ON events BEGIN
        INSERT INTO log VALUES (CASE NEW.kind WHEN 'a' THEN 'A;' ELSE 'other' END);
        UPDATE events SET end = NEW.start WHERE id = NEW.id AND end IS NULL;
      END;
      INSERT INTO events (start, kind) VALUES ('2025-01-01', 'a');`;
    const db = new Database(':memory:');
    try {
      for (const statement of sut(script)) db.prepare(statement).run();
      expect(db.prepare('SELECT "what;" AS what FROM log').all()).toEqual([{ what: 'A;' }]);
      expect(db.prepare('SELECT end FROM events').all()).toEqual([{ end: '2025-01-01' }]);
    } finally {
      db.close();
    }
  });
});

describe(stripLeadingComments.name, () => {
  const sut = stripLeadingComments;

  it('removes whitespace and every comment before the first keyword', () => {
    expect(sut('  -- one\n  /* two */\n\t/* three\n*/ SELECT 1 -- kept')).toBe('SELECT 1 -- kept');
  });

  it('leaves a statement without leading comments as it is, less leading space', () => {
    expect(sut('  SELECT /* inner */ 1')).toBe('SELECT /* inner */ 1');
  });

  it('returns nothing for text that is only comments, even unterminated', () => {
    expect(sut('-- only a comment')).toBe('');
    expect(sut('/* open comment SELECT 1')).toBe('');
  });
});

describe(leadingKeyword.name, () => {
  const sut = leadingKeyword;

  it('upper-cases the first keyword after comments', () => {
    expect(sut('/* x */ -- y\n with t AS (SELECT 1) INSERT INTO a SELECT * FROM t')).toBe('WITH');
    expect(sut('insert into a values (1)')).toBe('INSERT');
  });

  it('is empty when the statement starts with no keyword', () => {
    expect(sut('-- nothing')).toBe('');
    expect(sut('(SELECT 1)')).toBe('');
    expect(sut('')).toBe('');
  });
});

describe(checkConstraints.name, () => {
  const sut = checkConstraints;

  it('finds column and table checks, named or not, across lines', () => {
    const sql = `CREATE TABLE t (
      id INTEGER PRIMARY KEY,
      qty INTEGER CHECK (qty >= 0) NOT NULL,
      status TEXT CHECK(status IN ('a', 'b)')),
      CONSTRAINT "qty_small" CHECK (qty < 100),
      CONSTRAINT [bracketed] CHECK (length(status) = 1),
      constraint plain check (id > 0),
      CHECK (
        qty <> id
      )
    )`;

    expect(sut(sql)).toEqual([
      { name: null, expression: 'qty >= 0' },
      { name: null, expression: "status IN ('a', 'b)')" },
      { name: 'qty_small', expression: 'qty < 100' },
      { name: 'bracketed', expression: 'length(status) = 1' },
      { name: 'plain', expression: 'id > 0' },
      { name: null, expression: 'qty <> id' },
    ]);
  });

  it('ignores CHECK in quoted names, strings, comments and nested parentheses', () => {
    const sql = `CREATE TABLE "check" (
      "check (x)" TEXT DEFAULT 'CHECK (1)', -- CHECK (2)
      /* CHECK (3) */ n INTEGER GENERATED ALWAYS AS (abs(1)) VIRTUAL
    )`;

    expect(sut(sql)).toEqual([]);
  });

  it('finds the checks SQLite enforces, and nothing in a table without one', () => {
    const db = new Database(':memory:');
    try {
      db.exec(
        'CREATE TABLE t (a INTEGER CHECK (a > 0), b INTEGER, CONSTRAINT "b_c" CHECK (b < 5))',
      );
      const { sql } = db.prepare("SELECT sql FROM sqlite_schema WHERE name = 't'").get() as {
        sql: string;
      };

      expect(sut(sql)).toEqual([
        { name: null, expression: 'a > 0' },
        { name: 'b_c', expression: 'b < 5' },
      ]);
      expect(() => db.prepare('INSERT INTO t VALUES (1, 9)').run()).toThrow(/b_c/);
      expect(sut('CREATE TABLE u (a INTEGER)')).toEqual([]);
    } finally {
      db.close();
    }
  });
});
