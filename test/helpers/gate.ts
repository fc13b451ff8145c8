// A gate the test opens: what waits on it (an upstream's answer, the next write of a client) goes
// on at the moment the test has seen the event it needs, instead of after a guessed sleep.

export interface Gate {
  /** true once open() was called */
  readonly isOpen: boolean
  /** Let every waiter (and every later one) through. */
  open(): void
  /** Resolves once the gate is open (at once if it already is). */
  wait(): Promise<void>
}

export function gate(): Gate {
  let isOpen = false
  let release!: () => void
  const opened = new Promise<void>((r) => (release = r))
  return {
    get isOpen() {
      return isOpen
    },
    open() {
      isOpen = true
      release()
    },
    wait: () => opened,
  }
}
