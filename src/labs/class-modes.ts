/**
 * The class modes: a lab's records (records.ts) pass through stages on their way to the screen.
 * `--step` holds each step back until Enter; `--quiz` (quiz.ts) asks before each prediction is
 * shown. The lab itself never waits for the class: it runs at the kernel's pace, and its records
 * queue up here. That is deliberate: the kernel's timers do not stop while a student thinks
 * (TIME_WAIT lasts 60 s, an orphaned FIN_WAIT2 as long), and a lab's deadlines would run out; a
 * reading taken after a long pause would be another experiment. So the kernel is read when the
 * step runs, and only the telling waits: what a student sees before answering is exactly what
 * they would have seen live, and the answer is never shown before they have given theirs.
 */
import { quizzed, type AnswerSource, type LineInput } from './quiz.js';
import type { LabRecord } from './records.js';

/**
 * Items pushed as they come (a lab's records, lines typed), taken in order by a consumer that may
 * fall behind: `for await`, or `next()`, which an AbortSignal can cut short (Ctrl-C while waiting).
 */
export class Queue<T> implements AsyncIterable<T> {
  private readonly waiting: T[] = [];
  private ended = false;
  private wake: (() => void) | undefined;

  readonly push = (item: T): void => {
    this.waiting.push(item);
    this.wake?.();
  };

  /** No more items: the lab has finished (or failed), the input has ended. */
  readonly end = (): void => {
    this.ended = true;
    this.wake?.();
  };

  /** The next item, or undefined once the queue has ended and is empty; rejects with `signal`'s reason when it aborts first. */
  async next(signal?: AbortSignal): Promise<T | undefined> {
    for (;;) {
      signal?.throwIfAborted();
      if (this.waiting.length > 0) return this.waiting.shift();
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => {
        const aborted = (): void => resolve();
        signal?.addEventListener('abort', aborted, { once: true });
        this.wake = () => {
          signal?.removeEventListener('abort', aborted);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (let item = await this.next(); item !== undefined; item = await this.next()) yield item;
  }
}

/**
 * `--step`: each step waits for a line of `input` (Enter, at a terminal) before it is shown;
 * `prompt` says so, where a person is there to read it. Once the input has ended (a pipe with no
 * more lines), the rest follows without pausing.
 */
export async function* paced(records: AsyncIterable<LabRecord>, input: LineInput, prompt: (step: number) => void): AsyncGenerator<LabRecord> {
  let inputEnded = false;
  for await (const record of records) {
    if (record.type === 'step' && !inputEnded) {
      prompt(record.step);
      inputEnded = (await input.next()) === undefined;
    }
    yield record;
  }
}

export interface ClassModes {
  /** `--step`: pause before each step. */
  step?: { input: LineInput; prompt: (step: number) => void };
  /** `--quiz`: ask before each prediction, with the answers from here. */
  quiz?: AnswerSource;
}

/** The lab's records as the class sees them: paced, with the quiz's questions, answers and score. */
export function inClass(records: AsyncIterable<LabRecord>, { step, quiz }: ClassModes): AsyncIterable<LabRecord> {
  const stepped = step === undefined ? records : paced(records, step.input, step.prompt);
  return quiz === undefined ? stepped : quizzed(stepped, quiz);
}
