// Waiting for events instead of sleeping. gate(): what waits on it (an upstream's answer, the
// next write of a client) goes on at the moment the test has seen the event it needs. steady():
// a bounded poll until a value stops moving.

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

/**
 * Resolves with value() once it has not changed for quietMs (polled every few ms); throws after
 * timeoutMs. For a negative such as "the sender is held back": there is no event for "stopped",
 * so the quiet time is the window, and a value still moving is a failure with a clear message.
 */
export async function steady(what: string, value: () => number, quietMs = 100, timeoutMs = 5000): Promise<number> {
  const deadline = Date.now() + timeoutMs
  let last = value()
  let since = Date.now()
  for (;;) {
    await new Promise((r) => setTimeout(r, 5))
    const v = value()
    if (v !== last) {
      last = v
      since = Date.now()
    } else if (Date.now() - since >= quietMs) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} to stay put (still moving: ${v})`)
  }
}
