// The JSON log lines a child process writes (pino, one object per line), collected as they arrive,
// and waits for a line that matches: how the process tests see what a program did and when.

export type LogLine = Record<string, unknown>;

export class JsonLog {
  readonly lines: LogLine[] = [];
  private readonly waiters = new Set<() => void>();

  /**
   * Collects the lines of `stream`. A line that is not JSON is kept as `{ unparsed }`, or skipped
   * (`'skip'`, for a stream that also carries other text, such as the monitor's `[MONITOR]` echo).
   */
  follow(stream: NodeJS.ReadableStream, nonJson: 'keep' | 'skip' = 'keep'): void {
    let rest = '';
    stream.on('data', (chunk: Buffer) => {
      const parts = (rest + chunk.toString('utf8')).split('\n');
      rest = parts.pop() ?? '';
      for (const part of parts) {
        try {
          this.lines.push(JSON.parse(part) as LogLine);
        } catch {
          if (nonJson === 'keep') this.lines.push({ unparsed: part });
        }
      }
      this.recheck();
    });
  }

  /** Looks at the pending waits again: on new lines, and when what `gaveUp` looks at changed (exit). */
  recheck(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  /**
   * The first line that matches `pred`, as soon as it is there. Rejects with `fail.timeout()` after
   * timeoutMs, or at once with `fail.gaveUp()` when that says the line cannot come any more.
   */
  waitFor(pred: (line: LogLine) => boolean, timeoutMs: number, fail: { timeout: () => string; gaveUp?: () => string | undefined }): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const settle = (done: () => void): void => {
        this.waiters.delete(check);
        clearTimeout(timer);
        done();
      };
      const check = (): void => {
        const found = this.lines.find(pred);
        if (found) return settle(() => resolve(found));
        const why = fail.gaveUp?.();
        if (why !== undefined) settle(() => reject(new Error(why)));
      };
      const timer = setTimeout(() => settle(() => reject(new Error(fail.timeout()))), timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** The last lines, one JSON text per line, for error messages. */
  tail(n = 10): string {
    return this.lines
      .slice(-n)
      .map((l) => JSON.stringify(l))
      .join('\n');
  }
}
