/**
 * Where the cursor comes to rest after a move (not after typing), said once to the server as
 * `starchat/prefetch`: it reads the text around that place before the user types there, so the
 * first completions there find it in the model's cache.
 *
 * Pure: VS Code's events are wired in extension.ts; the clock and the timer can be replaced
 * (tests).
 */

export const PREFETCH = 'starchat/prefetch';
export const REST_MS = 400; // a cursor that stays this long has come to rest

export interface Place {
  uri: string;
  line: number;
  character: number;
}

export interface Clock {
  now(): number;
  after(ms: number, run: () => void): () => void; // returns: cancel
}

const realClock: Clock = {
  now: () => Date.now(),
  after: (ms, run) => {
    const timer = setTimeout(run, ms);
    return () => clearTimeout(timer);
  },
};

export class CursorRest {
  private cancel: (() => void) | undefined;
  private readonly edited = new Map<string, number>(); // each document's last edit
  private sent: { place: Place; at: number } | undefined;

  constructor(
    private readonly send: (place: Place) => void,
    private readonly clock: Clock = realClock,
    private readonly restMs = REST_MS,
  ) {}

  /** The document changed: typing moves the cursor too, and its completions read the place. */
  edit(uri: string): void {
    this.edited.set(uri, this.clock.now());
    this.stop();
  }

  /** The cursor moved; `empty`: no text is selected. */
  moved(place: Place, empty: boolean): void {
    this.stop();
    const at = this.clock.now();
    if (!empty || at - (this.edited.get(place.uri) ?? -Infinity) < this.restMs) {
      return; // a selection, or the move an edit made
    }
    this.cancel = this.clock.after(this.restMs, () => {
      this.cancel = undefined;
      if (!this.again(place)) {
        this.sent = { place, at: this.clock.now() };
        this.send(place);
      }
    });
  }

  dispose(): void {
    this.stop();
  }

  /** The same line of the same document as the last one sent, not edited since. */
  private again(place: Place): boolean {
    const last = this.sent;
    return (
      last !== undefined &&
      last.place.uri === place.uri &&
      last.place.line === place.line &&
      (this.edited.get(place.uri) ?? -Infinity) < last.at
    );
  }

  private stop(): void {
    this.cancel?.();
    this.cancel = undefined;
  }
}
