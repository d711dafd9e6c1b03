import type { TruncationReason } from './results.js';
import type { Row } from './sql-values.js';

// Rows returned to a caller (a query's rows, a write's RETURNING rows or preview) within limits.

export interface ResultLimits {
  maxRows: number;
  /** Budget for the rendered (JSON) rows, in bytes. */
  maxBytes: number;
  /** Longest text (characters) or blob (bytes) returned in one cell. */
  maxCellChars: number;
}

/** The size limits of the settings (QUERY_MAX_RESULT_BYTES, QUERY_MAX_CELL_CHARS); rows per tool. */
export type SizeLimits = Omit<ResultLimits, 'maxRows'>;

/** Each kept row's JSON text, as the byte budget counted it: the text answer reuses it. */
const rendered = new WeakMap<object, string>();

/** A row's JSON text: the one RowCollector rendered for it, else rendered now. */
export function rowText(row: object): string {
  return rendered.get(row) ?? JSON.stringify(row);
}

/**
 * Renders result rows (arrays for reads, objects for writes) within limits: cells shortened past
 * maxCellChars, rows kept while they fit maxRows and maxBytes.
 */
export class RowCollector<R extends unknown[] | Row> {
  readonly rows: R[] = [];
  reason: TruncationReason | null = null;
  /** Size of the values read from the database, before any shortening: text length, blob bytes. */
  valueBytes = 0;
  private bytes = 2;
  private shortened = false;

  constructor(private readonly limits: ResultLimits) {}

  /** Adds a row; false when it did not fit, and no later row is kept either. */
  add(raw: R): boolean {
    const values: unknown[] = Array.isArray(raw) ? raw : Object.values(raw);
    // Numbers, nulls and short texts are sent as read: such a row is kept as it is.
    let plain = true;
    for (const value of values) {
      if (typeof value === 'string') {
        this.valueBytes += value.length;
        if (value.length > this.limits.maxCellChars) plain = false;
      } else if (Buffer.isBuffer(value)) {
        this.valueBytes += value.length;
        plain = false;
      } else {
        this.valueBytes += 8;
        if (typeof value !== 'number' && value !== null) plain = false;
      }
    }
    if (this.reason !== null) return false;
    if (this.rows.length === this.limits.maxRows) {
      this.reason = 'max_rows';
      return false;
    }
    const row = plain ? raw : this.rendered(raw);
    const text = JSON.stringify(row);
    const size = Buffer.byteLength(text) + 1; // UTF-8 bytes, as sent
    if (this.bytes + size > this.limits.maxBytes) {
      this.reason = 'byte_budget';
      return false;
    }
    this.bytes += size;
    rendered.set(row, text);
    this.rows.push(row);
    return true;
  }

  /** The row with each cell as sent (bigints as text, long values shortened, blobs in base64). */
  private rendered(raw: R): R {
    return (
      Array.isArray(raw)
        ? raw.map((value) => this.cell(value))
        : Object.fromEntries(Object.entries(raw).map(([name, value]) => [name, this.cell(value)]))
    ) as R;
  }

  get truncationReason(): TruncationReason | null {
    return this.reason ?? (this.shortened ? 'cell_size' : null);
  }

  private cell(value: unknown): unknown {
    const max = this.limits.maxCellChars;
    if (typeof value === 'bigint') return value.toString();
    if (typeof value === 'string' && value.length > max) {
      this.shortened = true;
      return `${value.slice(0, max)}…[${value.length - max} more characters]`;
    }
    if (Buffer.isBuffer(value)) {
      const shown = Math.floor((max * 3) / 4);
      if (value.length <= shown) return `base64:${value.toString('base64')}`;
      this.shortened = true;
      return `base64:${value.subarray(0, shown).toString('base64')}…[blob of ${value.length} bytes]`;
    }
    return value;
  }
}
