// Buffer#latin1Slice is the native method behind buf.toString('latin1', start, end), without the
// argument handling; the codec calls it on every head. Present on Buffer.prototype in every Node
// release Weft supports, but not in @types/node.
declare global {
  interface Buffer {
    latin1Slice(start: number, end: number): string
  }
}
export {}
