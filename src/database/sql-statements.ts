/**
 * Splits SQLite script text into statements at top-level semicolons, respecting quotes
 * ('', "", ``, []), comments and CREATE TRIGGER ... BEGIN ... END bodies. Each piece is then
 * prepared on its own, so the database, not this function, decides what each statement is.
 */
export function splitStatements(script: string): string[] {
  const statements: string[] = [];
  let start = 0;
  let i = 0;
  let inBody = false; // inside a CREATE TRIGGER ... BEGIN ... END body
  // A body's END follows a ';'; a CASE's END never does (END is also a legal column name).
  let afterSemicolon = false;
  const n = script.length;
  const closeOf: Record<string, string> = { "'": "'", '"': '"', '`': '`', '[': ']' };

  while (i < n) {
    const c = script[i];
    if (c === '-' && script[i + 1] === '-') {
      const end = script.indexOf('\n', i);
      i = end === -1 ? n : end + 1;
    } else if (c === '/' && script[i + 1] === '*') {
      const end = script.indexOf('*/', i + 2);
      i = end === -1 ? n : end + 2;
    } else if (c in closeOf) {
      const close = closeOf[c];
      afterSemicolon = false;
      i++;
      while (i < n) {
        if (script[i] === close) {
          if (close !== ']' && script[i + 1] === close)
            i += 2; // doubled quote escapes itself
          else break;
        } else i++;
      }
      i++;
    } else if (/[A-Za-z_]/.test(c) && (i === 0 || !/[\w$]/.test(script[i - 1]))) {
      let j = i;
      while (j < n && /[\w$]/.test(script[j])) j++;
      const word = script.slice(i, j).toUpperCase();
      if (!inBody && word === 'BEGIN' && isTrigger(script.slice(start, i))) inBody = true;
      else if (inBody && word === 'END' && afterSemicolon) inBody = false;
      afterSemicolon = false;
      i = j;
    } else if (c === ';' && inBody) {
      afterSemicolon = true;
      i++;
    } else if (c === ';') {
      push(statements, script.slice(start, i));
      start = i + 1;
      i++;
    } else {
      if (!/\s/.test(c)) afterSemicolon = false;
      i++;
    }
  }
  push(statements, script.slice(start));
  return statements;
}

function isTrigger(head: string): boolean {
  return /^\s*CREATE\s+(?:TEMP\s+|TEMPORARY\s+)?TRIGGER\b/i.test(stripLeadingComments(head));
}

function push(statements: string[], text: string): void {
  if (stripLeadingComments(text).trim() !== '') statements.push(text.trim());
}

/** The statement without the comments and whitespace before its first keyword. */
export function stripLeadingComments(sql: string): string {
  let rest = sql;
  for (;;) {
    const trimmed = rest.trimStart();
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

export interface CheckConstraint {
  name: string | null;
  expression: string;
}

/**
 * The CHECK constraints of a CREATE TABLE statement, column and table level, named or not
 * (TypeORM's introspection finds only `CONSTRAINT "name" CHECK (...)` on one line).
 */
export function checkConstraints(createTable: string): CheckConstraint[] {
  const tokens: { text: string; depth: number; start: number; end: number }[] = [];
  const closeOf: Record<string, string> = { "'": "'", '"': '"', '`': '`', '[': ']' };
  const n = createTable.length;
  let depth = 0;
  let i = 0;
  while (i < n) {
    const c = createTable[i];
    const start = i;
    if (c === '-' && createTable[i + 1] === '-') {
      const end = createTable.indexOf('\n', i);
      i = end === -1 ? n : end + 1;
      continue;
    }
    if (c === '/' && createTable[i + 1] === '*') {
      const end = createTable.indexOf('*/', i + 2);
      i = end === -1 ? n : end + 2;
      continue;
    }
    if (c in closeOf) {
      const close = closeOf[c];
      i++;
      while (i < n) {
        if (createTable[i] !== close) i++;
        else if (close !== ']' && createTable[i + 1] === close) i += 2;
        else break;
      }
      i++;
    } else if (/[\w$]/.test(c)) {
      while (i < n && /[\w$]/.test(createTable[i])) i++;
    } else i++;
    if (/\s/.test(c)) continue;
    if (c === ')') depth--;
    tokens.push({ text: createTable.slice(start, i), depth, start, end: i });
    if (c === '(') depth++;
  }

  const unquote = (name: string) =>
    /^["`']/.test(name)
      ? name.slice(1, -1).replaceAll(name[0] + name[0], name[0])
      : name.startsWith('[')
        ? name.slice(1, -1)
        : name;
  const checks: CheckConstraint[] = [];
  tokens.forEach((token, k) => {
    const open = tokens[k + 1];
    if (token.depth !== 1 || token.text.toUpperCase() !== 'CHECK' || open?.text !== '(') return;
    const close = tokens.slice(k + 2).find((t) => t.text === ')' && t.depth === 1);
    const named = tokens[k - 2]?.depth === 1 && tokens[k - 2].text.toUpperCase() === 'CONSTRAINT';
    checks.push({
      name: named ? unquote(tokens[k - 1].text) : null,
      expression: createTable.slice(open.end, close?.start ?? n).trim(),
    });
  });
  return checks;
}
