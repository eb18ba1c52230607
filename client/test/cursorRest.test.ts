import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CursorRest } from '../src/cursorRest';
import type { Clock, Place } from '../src/cursorRest';

/** A clock the test moves by hand. */
class FakeClock implements Clock {
  time = 0;
  private timers: { at: number; run: () => void }[] = [];
  now(): number {
    return this.time;
  }
  after(ms: number, run: () => void): () => void {
    const timer = { at: this.time + ms, run };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }
  advance(ms: number): void {
    this.time += ms;
    const due = this.timers.filter((t) => t.at <= this.time);
    this.timers = this.timers.filter((t) => t.at > this.time);
    due.forEach((t) => t.run());
  }
}

function watcher(): { rest: CursorRest; clock: FakeClock; sent: Place[] } {
  const clock = new FakeClock();
  const sent: Place[] = [];
  return { rest: new CursorRest((place) => sent.push(place), clock, 400), clock, sent };
}

const A = { uri: 'file:///a.py', line: 10, character: 4 };

test('a cursor that rests at a new place is said once, after the rest', () => {
  const { rest, clock, sent } = watcher();
  clock.advance(1000);
  rest.moved(A, true);
  clock.advance(399);
  assert.deepEqual(sent, []);
  clock.advance(1);
  assert.deepEqual(sent, [A]);
  clock.advance(5000);
  assert.deepEqual(sent, [A]);
});

test('moving on before the rest ends says only the last place', () => {
  const { rest, clock, sent } = watcher();
  clock.advance(1000);
  rest.moved(A, true);
  clock.advance(200);
  const B = { ...A, line: 30 };
  rest.moved(B, true);
  clock.advance(400);
  assert.deepEqual(sent, [B]);
});

test('typing moves the cursor: no prefetch, nor for an edit during the rest', () => {
  const { rest, clock, sent } = watcher();
  clock.advance(1000);
  rest.edit(A.uri);
  rest.moved(A, true); // the move the edit made
  clock.advance(1000);
  assert.deepEqual(sent, []);
  rest.moved({ ...A, line: 40 }, true);
  clock.advance(100);
  rest.edit(A.uri); // typed at once: completions read that place
  clock.advance(1000);
  assert.deepEqual(sent, []);
});

test('a selection is no place to type; the same line again is not said twice unless edited', () => {
  const { rest, clock, sent } = watcher();
  clock.advance(1000);
  rest.moved(A, false);
  clock.advance(1000);
  assert.deepEqual(sent, []);
  rest.moved(A, true);
  clock.advance(400);
  rest.moved({ ...A, character: 9 }, true);
  clock.advance(400);
  assert.equal(sent.length, 1);
  rest.edit(A.uri);
  clock.advance(1000);
  rest.moved({ ...A, character: 2 }, true);
  clock.advance(400);
  assert.equal(sent.length, 2);
});
