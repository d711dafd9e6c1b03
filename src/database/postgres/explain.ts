import type pg from 'pg';
import type { ExplainRequest, ExplainResult, PlanStep } from '../engine.js';
import { SqlError } from '../sql-values.js';
import type { Deadline } from './deadline.js';
import { readTransaction } from './session.js';
import { bindParams, runStatement } from './statement.js';

// explain_query: `EXPLAIN (FORMAT JSON) <caller's statement>`. Prefixing is text concatenation,
// acceptable here only because the whole still travels as ONE statement through the extended
// protocol, inside a READ ONLY transaction that is rolled back: the caller's text cannot close
// the options list (it is closed before it), cannot add ANALYZE (`EXPLAIN (...) ANALYZE x` and
// `EXPLAIN (...) EXPLAIN x` are syntax errors), and cannot add a statement. Without ANALYZE the
// statement is planned, never run. A plan that would write or lock rows is refused, as query
// would refuse the statement.

const PREFIX = 'EXPLAIN (FORMAT JSON) ';

interface PlanNode {
  'Node Type': string;
  Plans?: PlanNode[];
  [key: string]: unknown;
}

/** Nodes of statements that change or lock rows. */
const WRITING_NODES = new Set(['ModifyTable', 'LockRows']);
const CONDITIONS = [
  'Index Cond',
  'Recheck Cond',
  'Hash Cond',
  'Merge Cond',
  'Join Filter',
  'Filter',
];
const AGGREGATES: Record<string, string> = {
  Sorted: 'GroupAggregate',
  Hashed: 'HashAggregate',
  Mixed: 'MixedAggregate',
};

function field(node: PlanNode, key: string): string | undefined {
  const value = node[key];
  return typeof value === 'string' ? value : undefined;
}

/** One node as EXPLAIN's text format names it: "Index Scan using idx on t (Index Cond: ...)". */
export function planDetail(node: PlanNode): string {
  const type = node['Node Type'];
  const join = field(node, 'Join Type');
  let name = type;
  if (type === 'Aggregate') name = AGGREGATES[field(node, 'Strategy') ?? ''] ?? type;
  else if (join && join !== 'Inner')
    name =
      type === 'Nested Loop' ? `Nested Loop ${join} Join` : type.replace(/ Join$/, ` ${join} Join`);
  const parts = [name];
  const index = field(node, 'Index Name');
  if (index) parts.push(type === 'Bitmap Index Scan' ? `on ${index}` : `using ${index}`);
  const relation = field(node, 'Relation Name');
  const alias = field(node, 'Alias');
  const target =
    field(node, 'CTE Name') ?? field(node, 'Function Name') ?? (relation ? undefined : alias);
  if (relation) parts.push(`on ${relation}${alias && alias !== relation ? ` ${alias}` : ''}`);
  else if (target) parts.push(`on ${target}`);
  const conditions = CONDITIONS.flatMap((key) => {
    const value = field(node, key);
    return value ? [`${key}: ${value}`] : [];
  });
  if (conditions.length > 0) parts.push(`(${conditions.join('; ')})`);
  const subplan = field(node, 'Subplan Name');
  if (subplan) parts.push(`[${subplan}]`);
  return parts.join(' ');
}

/** The plan tree as steps: ids from 1 in depth-first order, parent 0 for the root. */
export function flattenPlan(root: PlanNode): PlanStep[] {
  const steps: PlanStep[] = [];
  const visit = (node: PlanNode, parent: number) => {
    if (WRITING_NODES.has(node['Node Type']))
      throw new SqlError(
        'explain_query explains read-only statements (SELECT, WITH ... SELECT, VALUES) without FOR UPDATE/SHARE; this one would change or lock rows.',
        'NOT_READ_ONLY',
      );
    const id = steps.length + 1;
    steps.push({ id, parent, detail: planDetail(node) });
    for (const child of node.Plans ?? []) visit(child, id);
  };
  visit(root, 0);
  return steps;
}

function rootOf(value: unknown): PlanNode {
  const first: unknown = Array.isArray(value) ? value[0] : undefined;
  const plan =
    typeof first === 'object' && first !== null ? (first as { Plan?: unknown }).Plan : undefined;
  if (typeof plan !== 'object' || plan === null || !('Node Type' in plan))
    throw new Error('EXPLAIN (FORMAT JSON) returned no plan');
  return plan as PlanNode;
}

/** PostgreSQL's plan for one read-only statement, with the caller's params bound ($1..$n). */
export async function explainQuery(
  client: pg.ClientBase,
  request: ExplainRequest,
  deadline: Deadline,
): Promise<ExplainResult> {
  const params = bindParams(request.params);
  try {
    return await readTransaction(client, deadline, async () => {
      let plan: unknown;
      await runStatement<unknown[]>(client, PREFIX + request.sql, params, {
        rowMode: 'array',
        onRow: (row) => {
          plan = row[0];
          return false;
        },
        drain: false,
        limit: 1,
      });
      return { plan: flattenPlan(rootOf(plan)) };
    });
  } catch (error) {
    if (
      error instanceof SqlError &&
      error.code === 'SYNTAX_ERROR' &&
      /^\s*(EXPLAIN|ANALYZE|ANALYSE)\b/i.test(request.sql)
    )
      throw new SqlError(
        'Give the statement itself, without EXPLAIN or ANALYZE; explain_query shows its plan.',
        'NOT_READ_ONLY',
      );
    throw error;
  }
}
