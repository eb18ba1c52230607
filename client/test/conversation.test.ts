import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Conversation, type ViewUpdate } from '../src/conversation';

test('chunks stream into the answer and the response text wins', () => {
  const updates: ViewUpdate[] = [];
  const chat = new Conversation((update) => updates.push(structuredClone(update)));
  chat.addUser('why?');
  const answer = chat.startAnswer();
  chat.append(answer.id, 'Because');
  chat.append(answer.id, ' of');
  assert.equal(chat.all()[1].content, 'Because of');
  chat.finish(answer.id, 'Because of the loop.');
  chat.append(answer.id, ' late chunk');
  assert.equal(chat.all()[1].content, 'Because of the loop.');
  assert.equal(chat.all()[1].state, 'done');
  assert.deepEqual(
    updates.map((update) => (update.type === 'message' ? [update.message.id, update.message.state, update.message.content] : update.type)),
    [
      [1, 'done', 'why?'],
      [2, 'streaming', ''],
      [2, 'streaming', 'Because'],
      [2, 'streaming', 'Because of'],
      [2, 'done', 'Because of the loop.'],
    ],
  );
});

test('a stopped answer keeps what streamed; a failed one says why', () => {
  const chat = new Conversation();
  chat.addUser('a');
  const stopped = chat.startAnswer();
  chat.append(stopped.id, 'partial');
  chat.stop(stopped.id);
  assert.deepEqual([stopped.content, stopped.state, stopped.detail], ['partial', 'stopped', 'stopped']);
  chat.addUser('b');
  const failed = chat.startAnswer();
  chat.fail(failed.id, 'model not pulled');
  assert.deepEqual([failed.state, failed.detail], ['error', 'model not pulled']);
});

test('turns alternate: failed and empty answers are left out with the question they answered', () => {
  const chat = new Conversation();
  chat.addUser('first');
  chat.finish(chat.startAnswer().id, 'one');
  chat.addUser('lost');
  chat.fail(chat.startAnswer().id, 'error');
  chat.addUser('second');
  chat.startAnswer();
  assert.deepEqual(chat.turns(), [
    { role: 'user', content: 'first' },
    { role: 'assistant', content: 'one' },
    { role: 'user', content: 'second' },
  ]);
});

test('a stopped answer with text stays in the conversation; clear empties it', () => {
  const updates: ViewUpdate[] = [];
  const chat = new Conversation((update) => updates.push(update));
  chat.addUser('q');
  const answer = chat.startAnswer();
  chat.append(answer.id, 'half an answer');
  chat.stop(answer.id);
  chat.addUser('go on');
  assert.deepEqual(
    chat.turns().map((turn) => turn.role),
    ['user', 'assistant', 'user'],
  );
  chat.clear();
  assert.deepEqual(chat.all(), []);
  assert.deepEqual(updates.at(-1), { type: 'reset', messages: [] });
});
