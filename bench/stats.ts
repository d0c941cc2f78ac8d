// Small helpers shared by the benchmarks.

/** The p-th percentile (nearest rank) of a sample; NaN when it is empty. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export const median = (values: number[]): number => percentile(values, 50);

/** One result line, prefixed so that the closing notes can quote the benchmark's own output. */
export function report(line: string): void {
  process.stdout.write(`BENCH ${line}\n`);
}
