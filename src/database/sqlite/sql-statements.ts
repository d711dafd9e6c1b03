interface Token {
  text: string;
  start: number;
  end: number;
  kind: 'word' | 'quoted' | 'punctuation';
}

const CLOSE_OF: Record<string, string> = { "'": "'", '"': '"', '`': '`', '[': ']' };

// SQLite's own character classes (tokenize.c): only ASCII blanks separate tokens, and every
// character past ASCII belongs to an identifier. JavaScript's \s and \w differ on both (U+00A0
// is \s; é is not \w), which would let text read one way here and another way by SQLite.
const SQLITE_SPACE = /[ \t\n\v\f\r]/;
const SQLITE_ID_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/;

/**
 * SQLite's lexical units, enough to find statement and clause boundaries: words, quoted strings
 * and identifiers ('', "", ``, [], a doubled quote escaping itself) and single punctuation
 * characters; comments and whitespace are skipped.
 */
function* tokensOf(sql: string): Generator<Token> {
  const n = sql.length;
  let i = 0;
  while (i < n) {
    const c = sql[i];
    const start = i;
    if (c === '-' && sql[i + 1] === '-') {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? n : end + 1;
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      i = end === -1 ? n : end + 2;
    } else if (SQLITE_SPACE.test(c)) {
      i++;
    } else if (c in CLOSE_OF) {
      const close = CLOSE_OF[c];
      i++;
      while (i < n) {
        if (sql[i] !== close) i++;
        else if (close !== ']' && sql[i + 1] === close) i += 2;
        else break;
      }
      i = Math.min(i + 1, n);
      yield { text: sql.slice(start, i), start, end: i, kind: 'quoted' };
    } else if (SQLITE_ID_CHAR.test(c)) {
      while (i < n && SQLITE_ID_CHAR.test(sql[i])) i++;
      yield { text: sql.slice(start, i), start, end: i, kind: 'word' };
    } else {
      i++;
      yield { text: c, start, end: i, kind: 'punctuation' };
    }
  }
}

/**
 * Splits SQLite script text into statements at top-level semicolons, respecting quotes,
 * comments and CREATE TRIGGER ... BEGIN ... END bodies. Each piece is then prepared on its own,
 * so the database, not this function, decides what each statement is.
 */
export function splitStatements(script: string): string[] {
  const statements: string[] = [];
  let start = 0;
  let inBody = false; // inside a CREATE TRIGGER ... BEGIN ... END body
  // A body's END follows a ';'; a CASE's END never does (END is also a legal column name).
  let afterSemicolon = false;
  for (const token of tokensOf(script)) {
    if (token.text === ';' && inBody) {
      afterSemicolon = true;
      continue;
    }
    if (token.text === ';') {
      push(statements, script.slice(start, token.start));
      start = token.end;
      continue;
    }
    const word = token.kind === 'word' ? token.text.toUpperCase() : '';
    if (!inBody && word === 'BEGIN' && isTrigger(script.slice(start, token.start))) inBody = true;
    else if (inBody && word === 'END' && afterSemicolon) inBody = false;
    afterSemicolon = false;
  }
  push(statements, script.slice(start));
  return statements;
}

function isTrigger(head: string): boolean {
  return /^CREATE[ \t\n\v\f\r]+(?:TEMP[ \t\n\v\f\r]+|TEMPORARY[ \t\n\v\f\r]+)?TRIGGER(?![A-Za-z0-9_$\u0080-\uffff])/i.test(
    stripLeadingComments(head),
  );
}

function push(statements: string[], text: string): void {
  if (stripLeadingComments(text).trim() !== '') statements.push(text.trim());
}

/** The statement without the comments and whitespace before its first keyword. */
export function stripLeadingComments(sql: string): string {
  let rest = sql;
  for (;;) {
    const trimmed = rest.replace(/^[ \t\n\v\f\r]+/, '');
    if (trimmed.startsWith('--')) {
      const end = trimmed.indexOf('\n');
      rest = end === -1 ? '' : trimmed.slice(end + 1);
    } else if (trimmed.startsWith('/*')) {
      const end = trimmed.indexOf('*/');
      rest = end === -1 ? '' : trimmed.slice(end + 2);
    } else return trimmed;
  }
}

/** The first keyword of a statement, upper-cased ('' when there is none). */
export function leadingKeyword(sql: string): string {
  return /^[A-Za-z]+/.exec(stripLeadingComments(sql))?.[0].toUpperCase() ?? '';
}

/** An identifier token without its quotes ("", ``, '' with doubled quotes; []). */
function unquoteIdentifier(name: string): string {
  if (/^["`']/.test(name)) return name.slice(1, -1).replaceAll(name[0] + name[0], name[0]);
  return name.startsWith('[') ? name.slice(1, -1) : name;
}

/**
 * The module of a CREATE VIRTUAL TABLE statement (the name after its first top-level USING
 * word; quoted names are single tokens, so a name cannot fake it), else undefined.
 */
export function virtualTableModule(sql: string): string | undefined {
  const tokens = [...tokensOf(sql)];
  const words = tokens.slice(0, 3).map((token) => token.text.toUpperCase());
  if (words.join(' ') !== 'CREATE VIRTUAL TABLE') return undefined;
  const using = tokens.findIndex((token) => token.kind === 'word' && /^using$/i.test(token.text));
  const module = using >= 0 ? tokens[using + 1] : undefined;
  return module && module.kind !== 'punctuation' ? unquoteIdentifier(module.text) : '';
}

export interface CheckConstraint {
  name: string | null;
  expression: string;
}

/**
 * The CHECK constraints of a CREATE TABLE statement, column and table level, named or not
 * (TypeORM's introspection finds only `CONSTRAINT "name" CHECK (...)` on one line).
 */
export function checkConstraints(createTable: string): CheckConstraint[] {
  // Each token with its parenthesis depth: the table's own clauses are at depth 1.
  const tokens: (Token & { depth: number })[] = [];
  let depth = 0;
  for (const token of tokensOf(createTable)) {
    if (token.text === ')') depth--;
    tokens.push({ ...token, depth });
    if (token.text === '(') depth++;
  }
  const n = createTable.length;

  const checks: CheckConstraint[] = [];
  tokens.forEach((token, k) => {
    const open = tokens[k + 1];
    if (token.depth !== 1 || token.text.toUpperCase() !== 'CHECK' || open?.text !== '(') return;
    const close = tokens.slice(k + 2).find((t) => t.text === ')' && t.depth === 1);
    const named = tokens[k - 2]?.depth === 1 && tokens[k - 2].text.toUpperCase() === 'CONSTRAINT';
    checks.push({
      name: named ? unquoteIdentifier(tokens[k - 1].text) : null,
      expression: createTable.slice(open.end, close?.start ?? n).trim(),
    });
  });
  return checks;
}
