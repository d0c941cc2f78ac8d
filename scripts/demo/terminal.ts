// The view's two outputs: a terminal redrawn in place (cursor home, each line cleared to its end,
// the rest of the screen cleared), or plain lines, one per change, with no escape codes.

import { changeLines, renderFrame, type ViewState } from './view.js';

export interface Display {
  show(state: ViewState): void;
  /** Leaves the terminal as it was found (cursor shown), the last state still on screen. */
  close(): void;
}

const ESC = '\x1b[';

/** One frame as the bytes that redraw it over the previous one. */
export function frameBytes(lines: string[]): string {
  return `${ESC}H${lines.map((l) => `${l}${ESC}K`).join('\n')}\n${ESC}J`;
}

export function liveDisplay(out: NodeJS.WriteStream): Display {
  out.write(`${ESC}?25l${ESC}2J`);
  const restore = () => out.write(`${ESC}?25h`);
  process.once('exit', restore);
  return {
    show(state) {
      // Never more lines than the screen has, or the redraw would scroll. A terminal that tells no
      // size (0, as under script(1) without a tty behind it) gets the classic 80x24.
      const lines = renderFrame(state, out.columns || 80).slice(0, Math.max(1, (out.rows || 24) - 1));
      out.write(frameBytes(lines));
    },
    close() {
      restore();
      process.off('exit', restore);
    },
  };
}

export function plainDisplay(out: NodeJS.WritableStream): Display {
  let prev: ViewState | undefined;
  return {
    show(state) {
      const lines = changeLines(prev, state);
      if (lines.length > 0) out.write(`${lines.join('\n')}\n`);
      prev = state;
    },
    close() {},
  };
}
