// Time for the policy filters: milliseconds on a monotonic clock. Injected so that tests control
// time instead of sleeping (token refills, budget windows, ejection times).
export type Clock = () => number

export const monotonic: Clock = () => performance.now()
