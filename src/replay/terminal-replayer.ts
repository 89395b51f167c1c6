import xterm from "@xterm/headless";
import { bufferText, readScreen, type ScreenSnapshot } from "./screen.js";

/**
 * A recorded terminal that can be shown at any moment: output is fed through a real terminal
 * emulator (xterm.js, headless), so cursor movement, clears, scroll regions, the alternate
 * screen and resizes land exactly as the user saw them.
 *
 * Seeking forward feeds only what lies between; seeking backward starts a fresh terminal and
 * re-feeds from the start (an emulator's state cannot be copied, and @xterm/addon-serialize
 * is not a dependency). Measured on a 5 MB recording (5,000 output events): a backward seek
 * re-feeding all of it takes ~0.15 s (~0.4 s the first time, before the JIT warms up), a 5 s
 * step forward ~30 ms. The feed yields to the event loop between batches, so the player keeps
 * answering keys, and a newer seek supersedes an older one still in progress.
 */
export type TermFrame =
  { ms: number; data: string } | { ms: number; resize: { cols: number; rows: number } };

export interface TerminalSpec {
  frames: readonly TermFrame[];
  /** The size at the start (the pty's; 80×24 when unknown). */
  cols: number;
  rows: number;
  /** Output of a channel without a pty has bare \n line ends: treat them as \r\n, as a tty would. */
  convertEol: boolean;
}

/** Output fed per write: large enough to parse fast, small enough to yield often. */
const BATCH_CHARS = 256 * 1024;

export class TerminalReplayer {
  private term: xterm.Terminal | null = null;
  /** Frames fed into `term`. */
  private fed = 0;
  private cursorHidden = false;
  private latest = 0;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly spec: TerminalSpec,
    private readonly opts: { scrollback?: number } = {},
  ) {}

  /** How many frames lie at or before `ms`. */
  framesAt(ms: number): number {
    const f = this.spec.frames;
    let lo = 0;
    let hi = f.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (f[mid]!.ms <= ms) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /**
   * The screen once every frame at or before `ms` has been fed. Resolves to null when a later
   * call superseded this one before it finished (the caller wants the later screen anyway).
   */
  screenAt(ms: number): Promise<ScreenSnapshot | null> {
    return this.enqueue(ms, (term) => readScreen(term, !this.cursorHidden));
  }

  /** Scrollback and screen as text at `ms` (null when superseded); for transcripts. */
  textAt(ms: number): Promise<string[] | null> {
    return this.enqueue(ms, (term) => bufferText(term));
  }

  dispose(): void {
    this.latest++;
    this.term?.dispose();
    this.term = null;
    this.fed = 0;
  }

  private enqueue<T>(ms: number, read: (term: xterm.Terminal) => T): Promise<T | null> {
    const id = ++this.latest;
    const run = this.queue.then(async () => {
      if (!(await this.feedTo(id, this.framesAt(ms))) || this.term === null) return null;
      return read(this.term);
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Feeds frames until `target` are in; false when superseded on the way. */
  private async feedTo(id: number, target: number): Promise<boolean> {
    if (id !== this.latest) return false;
    if (this.term === null || target < this.fed) this.restart();
    const term = this.term!;
    const frames = this.spec.frames;
    while (this.fed < target) {
      if (id !== this.latest) return false;
      const f = frames[this.fed]!;
      if ("resize" in f) {
        // Everything before it is parsed (each batch is awaited), so it applies in order.
        term.resize(Math.max(1, f.resize.cols), Math.max(1, f.resize.rows));
        this.fed++;
        continue;
      }
      let batch = "";
      while (this.fed < target && batch.length < BATCH_CHARS) {
        const next = frames[this.fed]!;
        if ("resize" in next) break;
        batch += next.data;
        this.fed++;
      }
      await new Promise<void>((resolve) => term.write(batch, resolve));
    }
    // A later call (or dispose) may have come in during the last write.
    return id === this.latest;
  }

  private restart(): void {
    this.term?.dispose();
    const term = new xterm.Terminal({
      cols: Math.max(1, this.spec.cols),
      rows: Math.max(1, this.spec.rows),
      scrollback: this.opts.scrollback ?? 0,
      convertEol: this.spec.convertEol,
      allowProposedApi: true,
      logLevel: "off",
    });
    this.cursorHidden = false;
    // DECTCEM (CSI ?25 l / h) is not in xterm's public modes: watch for it, and let xterm
    // handle the sequence as well (returning false passes it on).
    const has25 = (params: (number | number[])[]) => params.some((p) => p === 25);
    term.parser.registerCsiHandler({ prefix: "?", final: "l" }, (p) => {
      if (has25(p)) this.cursorHidden = true;
      return false;
    });
    term.parser.registerCsiHandler({ prefix: "?", final: "h" }, (p) => {
      if (has25(p)) this.cursorHidden = false;
      return false;
    });
    const shown = () => {
      this.cursorHidden = false;
      return false;
    };
    term.parser.registerEscHandler({ final: "c" }, shown); // RIS
    term.parser.registerCsiHandler({ intermediates: "!", final: "p" }, shown); // DECSTR
    this.term = term;
    this.fed = 0;
  }
}
