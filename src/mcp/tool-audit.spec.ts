import type { AuditFieldNames } from './mcp-tool.decorator.js';
import { attemptOf, ranOf, rowCountOf, toolCallEvent } from './tool-audit.js';
import type { ToolContext, ToolOutput } from './tool-context.js';

/** Audit fields as the pipeline gets them: names, checked against the schemas by @McpTool. */
const DECLARED: AuditFieldNames = {
  statement: 'sql',
  params: 'params',
  table: 'table',
  rowCount: 'rows',
};

const output = (data: object, audit?: ToolOutput<object>['audit']): ToolOutput<object> => ({
  data,
  text: 'rendered',
  ...(audit && { audit }),
});

describe(attemptOf.name, () => {
  const sut = attemptOf;

  it('takes the statement, parameters and table from the fields the tool declares', () => {
    expect(
      sut(DECLARED, { sql: 'SELECT * FROM t WHERE id = ?', params: [7], table: 't', other: 'x' }),
    ).toEqual({ sql: 'SELECT * FROM t WHERE id = ?', params: [7], table: 't' });
  });

  it('records nothing for a tool that declares no field, whatever its arguments hold', () => {
    expect(sut(undefined, { sql: 'SELECT 1', params: [1], table: 't' })).toStrictEqual({
      sql: undefined,
      params: undefined,
      table: undefined,
    });
    expect(sut({ table: 'table' }, { sql: 'SELECT 1', table: 't' })).toStrictEqual({
      sql: undefined,
      params: undefined,
      table: 't',
    });
  });

  it('reads only own properties: a statement inherited from a prototype is not recorded', () => {
    const inherited: unknown = Object.create({ sql: 'DROP TABLE t', params: [1], table: 't' });

    expect(sut(DECLARED, inherited)).toStrictEqual({
      sql: undefined,
      params: undefined,
      table: undefined,
    });
  });

  it('records the statement and table only when they are strings; parameters of any type', () => {
    expect(sut(DECLARED, { sql: 42, params: null, table: ['t'] })).toStrictEqual({
      sql: undefined,
      params: null,
      table: undefined,
    });
    expect(sut(DECLARED, { sql: { text: 'SELECT 1' }, params: 'one', table: 7 })).toStrictEqual({
      sql: undefined,
      params: 'one',
      table: undefined,
    });
  });

  it.each([
    ['undefined', undefined],
    ['null', null],
    ['a string', 'SELECT 1'],
    ['an array', ['SELECT 1']],
  ])('records nothing from arguments that are %s', (_case, args) => {
    expect(sut(DECLARED, args)).toStrictEqual({
      sql: undefined,
      params: undefined,
      table: undefined,
    });
  });

  it('takes a declared key that JSON gave as an own property, `__proto__` included', () => {
    const args: unknown = JSON.parse('{"__proto__": "SELECT 1"}');

    expect(sut({ statement: '__proto__' }, args).sql).toBe('SELECT 1');
  });
});

describe(rowCountOf.name, () => {
  const sut = rowCountOf;

  it('takes the count the method told (ToolOutput.audit.rowCount) over the declared field', () => {
    expect(sut(DECLARED, output({ rows: 5 }, { rowCount: 3 }))).toBe(3);
    expect(sut(DECLARED, output({ rows: 5 }, { rowCount: 0 }))).toBe(0);
    expect(sut(undefined, output({ rows: 5 }, { rowCount: 2 }))).toBe(2);
  });

  it("else reads the declared field of the result's data", () => {
    expect(sut(DECLARED, output({ rows: 5 }))).toBe(5);
    expect(sut(DECLARED, output({ rows: 5 }, { statement: 'SELECT 1' }))).toBe(5);
  });

  it('has no count without a declaration, for a count that is not a number, or without output', () => {
    expect(sut(undefined, output({ rows: 5 }))).toBeUndefined();
    expect(sut({ statement: 'sql' }, output({ rows: 5 }))).toBeUndefined();
    expect(sut(DECLARED, output({ rows: '5' }))).toBeUndefined();
    expect(sut(DECLARED, output(Object.create({ rows: 5 }) as object))).toBeUndefined();
    expect(sut(DECLARED, undefined)).toBeUndefined();
  });
});

describe(ranOf.name, () => {
  const sut = ranOf;
  const fromArgs = { sql: 'SELECT * FROM t', params: [1], table: 't' };

  it("gives what the method told it ran, as the record's fields", () => {
    expect(
      sut(output({}, { statement: 'SELECT id FROM t LIMIT ?', params: [10], table: 'u' })),
    ).toStrictEqual({ sql: 'SELECT id FROM t LIMIT ?', params: [10], table: 'u' });
  });

  it('overrides only the fields the method told, over what the arguments declared', () => {
    expect({ ...fromArgs, ...sut(output({}, { table: 'u', rowCount: 4 })) }).toStrictEqual({
      ...fromArgs,
      table: 'u',
    });
    expect({ ...fromArgs, ...sut(output({}, { params: null })) }).toStrictEqual({
      ...fromArgs,
      params: null,
    });
  });

  it('gives nothing when the method told nothing, or returned nothing', () => {
    expect(sut(output({ rows: 1 }))).toStrictEqual({});
    expect(sut(output({}, {}))).toStrictEqual({});
    expect(sut(undefined)).toStrictEqual({});
  });
});

describe(toolCallEvent.name, () => {
  const sut = toolCallEvent;

  it('carries who called which tool from where, its scopes, and what it would run; no outcome', () => {
    const context: ToolContext = {
      tool: 'run_sql',
      principal: {
        subject: 'user-1',
        clientId: 'client-1',
        tokenId: 'token-1',
        name: 'Ada',
        email: 'ada@example.com',
        scopes: new Set(['spec:read']),
        expiresAt: 2_000_000_000,
      },
      requiredScopes: ['spec:read'],
      requestId: 'request-1',
      remoteAddress: '203.0.113.7',
      userAgent: 'spec/1.0',
      protocolVersion: '2025-11-25',
    };

    expect(sut(DECLARED, context, { sql: 'SELECT 1', params: [], table: 't' })).toStrictEqual({
      principal: context.principal,
      tool: 'run_sql',
      requiredScopes: ['spec:read'],
      sql: 'SELECT 1',
      params: [],
      table: 't',
      requestId: 'request-1',
      remoteAddress: '203.0.113.7',
      userAgent: 'spec/1.0',
      protocolVersion: '2025-11-25',
    });
  });
});
