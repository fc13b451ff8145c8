// One raw HTTP/2 frame (RFC 9113 4.1), for tests that speak the protocol byte by byte.
export function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9)
  h.writeUIntBE(payload.length, 0, 3)
  h[3] = type
  h[4] = flags
  h.writeUInt32BE(streamId, 5)
  return Buffer.concat([h, payload])
}
