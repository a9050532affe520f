import { inspect } from 'node:util';

/**
 * A value that must never be printed, logged or serialised by accident
 * (DESIGN invariant 6: credentials never leave the broker/connector).
 * `String(secret)`, `JSON.stringify(secret)` and `console.log(secret)` all
 * give `<redacted>`; the value is reachable only through `reveal()`, which is
 * easy to grep for in review.
 */
export class Secret<T> {
  readonly #value: T;

  constructor(value: T) {
    this.#value = value;
  }

  reveal(): T {
    return this.#value;
  }

  toString(): string {
    return '<redacted>';
  }

  toJSON(): string {
    return '<redacted>';
  }

  [inspect.custom](): string {
    return 'Secret(<redacted>)';
  }
}
