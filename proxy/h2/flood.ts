// Reset-flood accounting of one HTTP/2 client connection (Envoy's premature-reset rule): in a
// window of RESET_WINDOW_MS, a connection with at least RESET_FLOOD_MIN streams of which half or
// more were reset within PREMATURE_MS of their start, or refused by the codec, is a flood: rapid
// reset (CVE-2023-44487) or an HPACK bomb whose every header block is refused. gRPC clients cancel
// calls and miss deadlines all the time; a connection that does little else is an attack.
// Coarse clock (the listener's sweeper): no timer.

export const RESET_WINDOW_MS = 10_000
export const RESET_FLOOD_MIN = 500
/** a reset later than this after the stream began is a client changing its mind, not a flood */
export const PREMATURE_MS = 1000

export class ResetWindow {
  private start: number
  private streams = 0
  private resets = 0
  /** streams emitted to JavaScript, and those nghttp2 opened but never emitted */
  private seen = 0
  private unseen = 0

  constructor(now: number) {
    this.start = now
  }

  /** A stream the proxy was given. */
  opened(): void {
    this.seen++
    this.streams++
  }

  /**
   * Streams nghttp2 processed and reset itself without emitting them (node:http2 answers a header
   * block over maxHeaderListSize or maxHeaders with RST_STREAM and no stream event): the gap
   * between the last client stream id it processed and the streams seen. Returns how many are new.
   */
  unseenSince(lastProcStreamId: number): number {
    const n = ((lastProcStreamId + 1) >>> 1) - this.seen - this.unseen
    if (n <= 0) return 0
    this.unseen += n
    return n
  }

  /** `n` streams reset (`opened` of them not counted by opened()); true: the connection floods. */
  reset(now: number, n = 1, opened = 0): boolean {
    if (now - this.start > RESET_WINDOW_MS) {
      this.start = now
      this.streams = opened === 0 ? n : 0
      this.resets = 0
    }
    this.streams += opened
    this.resets += n
    return this.streams >= RESET_FLOOD_MIN && this.resets * 2 >= this.streams
  }
}
