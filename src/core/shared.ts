/**
 * An object that several runtimes may hold at once: during a reload the old graph
 * drains with the same store and key sources the new graph already serves with.
 * Each holder acquires it once and releases it once; the object is closed when the
 * last holder lets go.
 */
export class Shared<T> {
  private refs = 1;

  constructor(
    readonly value: T,
    private readonly dispose: (value: T) => void | Promise<void>,
  ) {}

  /** false once the last holder released it: a closed object must not be handed on. */
  get alive(): boolean {
    return this.refs > 0;
  }

  /** Takes one more reference; undefined when the object is already closed. */
  acquire(): Shared<T> | undefined {
    if (this.refs <= 0) return undefined;
    this.refs++;
    return this;
  }

  /** Drops one reference; closes the object when it was the last. */
  async release(): Promise<void> {
    if (this.refs <= 0) return;
    this.refs--;
    if (this.refs === 0) await this.dispose(this.value);
  }
}
