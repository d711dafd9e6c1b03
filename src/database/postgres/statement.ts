import { createRequire } from 'node:module';
import pg from 'pg';
import { type SqlParams, SqlError, type SqlValue } from '../sql-values.js';
import { resultTypes } from './values.js';

// The only way caller SQL reaches PostgreSQL: one statement through the extended protocol
// (Parse of the unnamed statement, Bind to a portal of its own, Execute with a row count; never
// the simple protocol, never a named prepared statement), so PostgreSQL itself refuses a second
// statement ("cannot insert multiple commands into a prepared statement"). Values are bound,
// never pasted. Rows are fetched from the portal in batches: memory holds one batch, whatever the
// statement returns. The messages of one batch leave in one write, with the transaction's own
// opening statements (a Prologue) in front of the first: a key lookup is one round trip.

const FIRST_BATCH = 20;
const MAX_BATCH = 1000;

/**
 * The caller's params for $1..$n: PostgreSQL's own placeholders, bound in order; an object
 * (named placeholders) is refused: PostgreSQL has none.
 */
export function bindParams(params: SqlParams | undefined): SqlValue[] {
  if (params === undefined) return [];
  if (!Array.isArray(params))
    throw new SqlError(
      'PostgreSQL has no named placeholders: write $1, $2, ... in the SQL and give params as an array ($1 is params[0]).',
      'INVALID_PARAMS',
    );
  return params;
}

/** pg's own conversion of a bound value to PostgreSQL's text format (arrays as array literals). */
const { prepareValue } = createRequire(import.meta.url)('pg/lib/utils.js') as {
  prepareValue: (value: unknown) => string | Buffer | null;
};
const wireText = (value: unknown) => prepareValue(value) as string | null;

interface OwnStatement {
  text: string;
  values: unknown[];
}

/** Our own statements that open a transaction, sent in front of its first caller statement. */
export interface Prologue {
  statements: OwnStatement[];
  /**
   * A read's own end (ROLLBACK and the reset), sent right behind the statement's first batch in
   * the same round trip; `ended` says it ran. When that batch is not the whole answer, the
   * transaction is gone with it: the statement runs again in a new one, batch by batch.
   */
  epilogue?: OwnStatement[];
  ended?: boolean;
}

export interface StatementOutcome {
  fields: pg.FieldDef[];
  /** The command tag's verb (SELECT, INSERT, ...); null when the statement was left unfinished. */
  command: string | null;
  /** Rows the statement processed (the command tag's count), when it finished. */
  rowCount: number | null;
  /** Rows it returned (all of them with drain). */
  rows: number;
}

export interface StatementOptions<R> {
  rowMode?: 'array';
  /** Called for each row read while rows are wanted; returns false when no more are. */
  onRow(row: R): boolean;
  /**
   * Without drain, reading stops (the portal is closed) once onRow declines a row or `limit`
   * rows were read. With it, the statement is read to its end (for its row count), rows no
   * longer wanted are not parsed.
   */
  drain: boolean;
  limit: number;
}

/** pg's Result, which parses rows with a query's type parsers (not declared by @types/pg). */
interface PgResult {
  fields: pg.FieldDef[];
  command: string | null;
  rowCount: number | null;
  addFields(fields: pg.FieldDef[]): void;
  addCommandComplete(message: unknown): void;
  parseRow(values: unknown[]): unknown;
}
const Result = (
  pg as unknown as { Result: new (rowMode: string | undefined, types: unknown) => PgResult }
).Result;

/** pg's Connection as a Submittable drives it (the protocol messages this module sends). */
interface PgConnection {
  stream: { cork?(): void; uncork?(): void };
  parse(query: { text: string }): void;
  bind(config: { portal: string; values: (string | null)[] }): void;
  describe(message: { type: 'P'; name: string }): void;
  execute(config: { portal: string; rows: number }): void;
  close(message: { type: 'P'; name: string }): void;
  sync(): void;
  sendCopyFail(message: string): void;
  once(event: 'noData', listener: () => void): void;
  removeListener(event: 'noData', listener: () => void): void;
}

interface Batch<R> {
  rows: R[];
  /** The portal has more rows (PortalSuspended). */
  suspended: boolean;
  /** The statement was COPY (refused at the end). */
  copy: boolean;
}

let nextPortal = 0;

/**
 * One round trip on the connection: optionally the prologue and the caller's Parse/Bind/Describe,
 * then Execute of up to `rows` rows and Sync, all in one write. pg's Client hands it the replies.
 */
class PortalBatch<R> implements pg.Submittable {
  private readonly rows: R[] = [];
  private suspended = false;
  private copy = false;
  /** CommandCompletes still expected from the prologue's statements (their rows are ignored). */
  private prologueLeft: number;
  /** Past the caller's statement: the epilogue's replies are ignored too. */
  private pastStatement = false;
  private resolve!: (batch: Batch<R>) => void;
  private reject!: (error: unknown) => void;
  readonly done = new Promise<Batch<R>>((resolve, reject) => {
    this.resolve = resolve;
    this.reject = reject;
  });

  constructor(
    private readonly portal: string,
    private readonly result: PgResult,
    private readonly batch: number,
    private readonly open?: {
      sql: string;
      values: unknown[];
      prologue: OwnStatement[];
      epilogue: OwnStatement[];
    },
    private readonly closeAfter = false,
  ) {
    this.prologueLeft = open?.prologue.length ?? 0;
  }

  submit(connection: pg.Connection): void {
    const con = connection as unknown as PgConnection;
    con.stream.cork?.();
    try {
      if (this.open) {
        for (const statement of this.open.prologue) own(con, statement);
        con.parse({ text: this.open.sql });
        con.bind({ portal: this.portal, values: this.open.values.map(wireText) });
        con.describe({ type: 'P', name: this.portal });
      }
      if (this.closeAfter) con.close({ type: 'P', name: this.portal });
      else con.execute({ portal: this.portal, rows: this.batch });
      // Skipped by PostgreSQL if anything before it failed (up to the Sync).
      for (const statement of this.open?.epilogue ?? []) own(con, statement);
      con.sync();
    } finally {
      con.stream.uncork?.();
    }
  }

  handleRowDescription(message: { fields: pg.FieldDef[] }): void {
    this.result.addFields(message.fields);
  }

  handleDataRow(message: { fields: unknown[] }): void {
    if (this.prologueLeft === 0 && !this.pastStatement)
      this.rows.push(this.result.parseRow(message.fields) as R);
  }

  handleCommandComplete(message: unknown): void {
    if (this.prologueLeft > 0) this.prologueLeft--;
    else if (!this.pastStatement) {
      this.result.addCommandComplete(message);
      this.pastStatement = true;
    }
  }

  handlePortalSuspended(): void {
    this.suspended = true;
    this.pastStatement = true;
  }

  handleEmptyQuery(): void {
    this.result.command = null;
    this.pastStatement = true;
  }

  /**
   * COPY FROM STDIN: refused on the spot. PostgreSQL ignored the Sync that came during copy-in
   * mode, and after the failure discards messages until the next one: hence a Sync of its own.
   */
  handleCopyInResponse(connection: pg.Connection): void {
    this.copy = true;
    const con = connection as unknown as PgConnection;
    con.sendCopyFail('COPY is not available through the database tools');
    con.sync();
  }

  /** COPY TO STDOUT's data: dropped; the statement is refused once it ends. */
  handleCopyData(): void {
    this.copy = true;
  }

  // pg's Client clears its active query before handing it an error: no ReadyForQuery follows.
  handleError(error: unknown): void {
    this.reject(this.copy ? copyRefusal() : error);
  }

  handleReadyForQuery(): void {
    this.resolve({ rows: this.rows, suspended: this.suspended, copy: this.copy });
  }
}

const copyRefusal = () =>
  new SqlError(
    'COPY is not available through the database tools: read with query (SELECT) and write with execute or insert_rows; nothing was changed.',
    'COPY_NOT_ALLOWED',
  );

/** One of our own statements through the unnamed statement and portal, all its rows. */
function own(con: PgConnection, statement: OwnStatement): void {
  con.parse({ text: statement.text });
  con.bind({ portal: '', values: statement.values.map(wireText) });
  con.execute({ portal: '', rows: 0 });
}

/** Command tags of statements that end or split a transaction. */
const TRANSACTION_TAGS = new Set(['BEGIN', 'START', 'COMMIT', 'ROLLBACK', 'SAVEPOINT', 'RELEASE']);

async function send<R>(client: pg.ClientBase, batch: PortalBatch<R>): Promise<Batch<R>> {
  // client.query(submittable) returns the submittable; its outcome is `done`.
  client.query(batch);
  return batch.done;
}

/**
 * Runs the caller's statement inside the call's transaction (session.ts); see StatementOptions.
 * With a prologue, the transaction's opening statements travel with the statement's first batch.
 */
export async function runStatement<R>(
  client: pg.ClientBase,
  sql: string,
  params: unknown[],
  options: StatementOptions<R>,
  prologue?: Prologue,
): Promise<StatementOutcome> {
  const epilogue = prologue?.epilogue;
  if (prologue && epilogue && !options.drain) {
    // One round trip: begin, the first rows, end. Rows wait until the batch proves to be whole.
    const limit = Math.min(FIRST_BATCH, options.limit);
    const first: R[] = [];
    const outcome = await readPortal(client, sql, params, {
      ...options,
      drain: false,
      onRow: (row: R) => first.push(row) < limit,
      limit,
      prologue: prologue.statements,
      epilogue,
      batches: 1,
    });
    prologue.ended = true;
    // Whole when it finished, or when it holds every row the caller could want.
    if (outcome.command !== null || limit >= options.limit) {
      let wanted = true;
      for (const row of first) if (wanted) wanted = options.onRow(row);
      if (outcome.command !== null && TRANSACTION_TAGS.has(outcome.command))
        throw transactionControl(outcome.command);
      return outcome;
    }
    // More rows than one batch: again, in a transaction of its own.
    prologue.ended = false;
  }
  const outcome = await readPortal(client, sql, params, {
    ...options,
    prologue: prologue?.statements ?? [],
    epilogue: [],
    batches: Infinity,
  });
  if (client.getTransactionStatus() === 'I') throw transactionControl(outcome.command);
  return outcome;
}

function transactionControl(command: string | null): SqlError {
  return new SqlError(
    `Transaction control (${command ?? 'COMMIT, ROLLBACK'}) is not allowed: each call runs in a transaction of its own.`,
    'TRANSACTION_CONTROL',
  );
}

/** Reads the statement's rows batch by batch (at most `batches` of them), as StatementOptions says. */
async function readPortal<R>(
  client: pg.ClientBase,
  sql: string,
  params: unknown[],
  options: StatementOptions<R> & {
    prologue: OwnStatement[];
    epilogue: OwnStatement[];
    batches: number;
  },
): Promise<StatementOutcome> {
  let wanted = true;
  const result = new Result(
    options.rowMode,
    resultTypes(() => !wanted),
  );
  const portal = `scopedb_${(nextPortal = (nextPortal + 1) % Number.MAX_SAFE_INTEGER)}`;
  let batch = options.drain ? MAX_BATCH : Math.min(FIRST_BATCH, options.limit);
  let read = 0;
  let sent = 0;
  let next: PortalBatch<R> | undefined = new PortalBatch<R>(portal, result, batch, {
    sql,
    values: params,
    prologue: options.prologue,
    epilogue: options.epilogue,
  });
  let outcome: StatementOutcome | undefined;
  while (next) {
    const reply = await send(client, next);
    sent++;
    if (reply.copy) throw copyRefusal();
    for (const row of reply.rows) if (wanted) wanted = options.onRow(row);
    read += reply.rows.length;
    next = undefined;
    if (!reply.suspended) {
      if (result.command === null)
        throw new SqlError('The SQL has no statement (only blanks or comments).', 'EMPTY_SQL');
      outcome = {
        fields: result.fields,
        command: result.command,
        rowCount: result.rowCount,
        rows: read,
      };
    } else if (sent >= options.batches) {
      // The epilogue ended the transaction, and the portal with it.
      outcome = { fields: result.fields, command: null, rowCount: null, rows: read };
    } else if (!options.drain && (!wanted || read >= options.limit)) {
      await send(client, new PortalBatch<R>(portal, result, 0, undefined, true));
      outcome = { fields: result.fields, command: null, rowCount: null, rows: read };
    } else {
      batch = Math.min(batch * 2, MAX_BATCH, options.drain ? MAX_BATCH : options.limit - read);
      next = new PortalBatch<R>(portal, result, batch);
    }
  }
  return outcome!;
}
