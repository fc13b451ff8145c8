// Buffer#latin1Slice / #latin1Write are the native methods behind buf.toString('latin1', ...) and
// buf.write(s, offset, 'latin1'), without the argument handling; the codec calls them per message. Present on Buffer.prototype in every Node
// release Weft supports, but not in @types/node.
declare global {
  interface Buffer {
    latin1Slice(start: number, end: number): string
    latin1Write(s: string, offset: number): number
  }
}
export {}
