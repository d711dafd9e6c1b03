/** Scrapes of a metrics listener, read as the tests compare them: one number per series. */

export type Labels = Record<string, string>;

/** One scrape: every sample, by name and labels. */
export interface Scrape {
  /** The sample's value; 0 when the series is absent (a counter not yet incremented). */
  value(name: string, labels?: Labels): number;
  /** Whether the series is there, whatever its value. */
  has(name: string, labels?: Labels): boolean;
  /** The metrics it declares (`# TYPE` lines), with samples or not yet. */
  readonly declared: Set<string>;
  /** The exposition as served. */
  readonly text: string;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

const keyOf = (name: string, labels: Labels) =>
  `${name}{${Object.keys(labels)
    .sort()
    .map((label) => `${label}=${JSON.stringify(labels[label])}`)
    .join(',')}}`;

/** Parses the Prometheus text exposition format (comments skipped, no timestamps expected). */
export function parseExposition(text: string): Scrape {
  const samples = new Map<string, number>();
  const declared = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) /.exec(line);
    if (type) declared.add(type[1]);
    if (line === '' || line.startsWith('#')) continue;
    const sample = SAMPLE.exec(line);
    if (!sample) throw new Error(`not a sample line: ${line}`);
    const labels: Labels = {};
    for (const [, label, value] of (sample[2] ?? '').matchAll(LABEL))
      labels[label] = value.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    samples.set(keyOf(sample[1], labels), Number(sample[3]));
  }
  return {
    declared,
    text,
    value: (name, labels = {}) => samples.get(keyOf(name, labels)) ?? 0,
    has: (name, labels = {}) => samples.has(keyOf(name, labels)),
  };
}

/** GET /metrics from the listener at `origin` (http://host:port); fails unless it answers 200. */
export async function scrape(origin: string): Promise<Scrape> {
  const response = await fetch(`${origin}/metrics`);
  const text = await response.text();
  if (response.status !== 200)
    throw new Error(`${origin}/metrics answered ${response.status}: ${text}`);
  return parseExposition(text);
}

/** How much each series moved between two scrapes. */
export function movement(before: Scrape, after: Scrape) {
  return (name: string, labels?: Labels) => after.value(name, labels) - before.value(name, labels);
}
