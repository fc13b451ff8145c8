// HTTP/2 frames (RFC 9113 §4, §6): types, flags, error codes, settings, and the writers of the
// frames the proxy sends. A frame is written as one Buffer: 9-byte header then payload.

export const FRAME_HEADER = 9
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')

export const T_DATA = 0
export const T_HEADERS = 1
export const T_PRIORITY = 2
export const T_RST_STREAM = 3
export const T_SETTINGS = 4
export const T_PUSH_PROMISE = 5
export const T_PING = 6
export const T_GOAWAY = 7
export const T_WINDOW_UPDATE = 8
export const T_CONTINUATION = 9

export const F_END_STREAM = 0x1
export const F_ACK = 0x1
export const F_END_HEADERS = 0x4
export const F_PADDED = 0x8
export const F_PRIORITY = 0x20

export const E_NO_ERROR = 0
export const E_PROTOCOL_ERROR = 1
export const E_INTERNAL_ERROR = 2
export const E_FLOW_CONTROL_ERROR = 3
export const E_SETTINGS_TIMEOUT = 4
export const E_STREAM_CLOSED = 5
export const E_FRAME_SIZE_ERROR = 6
export const E_REFUSED_STREAM = 7
export const E_CANCEL = 8
export const E_COMPRESSION_ERROR = 9
export const E_ENHANCE_YOUR_CALM = 11

export const S_HEADER_TABLE_SIZE = 1
export const S_ENABLE_PUSH = 2
export const S_MAX_CONCURRENT_STREAMS = 3
export const S_INITIAL_WINDOW_SIZE = 4
export const S_MAX_FRAME_SIZE = 5
export const S_MAX_HEADER_LIST_SIZE = 6

export const DEFAULT_WINDOW = 65535
export const DEFAULT_MAX_FRAME = 16384
export const MAX_WINDOW = 2 ** 31 - 1

export function frameHeader(b: Buffer, p: number, length: number, type: number, flags: number, streamId: number): void {
  b[p] = length >>> 16
  b[p + 1] = (length >>> 8) & 0xff
  b[p + 2] = length & 0xff
  b[p + 3] = type
  b[p + 4] = flags
  b.writeUInt32BE(streamId >>> 0, p + 5)
}

export function frame(type: number, flags: number, streamId: number, payload: Buffer | null): Buffer {
  const n = payload === null ? 0 : payload.length
  const b = Buffer.allocUnsafe(FRAME_HEADER + n)
  frameHeader(b, 0, n, type, flags, streamId)
  if (payload !== null) payload.copy(b, FRAME_HEADER)
  return b
}

export function settingsFrame(settings: readonly (readonly [number, number])[]): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER + 6 * settings.length)
  frameHeader(b, 0, 6 * settings.length, T_SETTINGS, 0, 0)
  let p = FRAME_HEADER
  for (const [id, v] of settings) {
    b.writeUInt16BE(id, p)
    b.writeUInt32BE(v >>> 0, p + 2)
    p += 6
  }
  return b
}

export const SETTINGS_ACK = frame(T_SETTINGS, F_ACK, 0, null)

export function u32Frame(type: number, streamId: number, v: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER + 4)
  frameHeader(b, 0, 4, type, 0, streamId)
  b.writeUInt32BE(v >>> 0, FRAME_HEADER)
  return b
}

export function goawayFrame(lastStreamId: number, code: number, debug: Buffer | null): Buffer {
  const n = 8 + (debug === null ? 0 : debug.length)
  const b = Buffer.allocUnsafe(FRAME_HEADER + n)
  frameHeader(b, 0, n, T_GOAWAY, 0, 0)
  b.writeUInt32BE(lastStreamId >>> 0, FRAME_HEADER)
  b.writeUInt32BE(code >>> 0, FRAME_HEADER + 4)
  if (debug !== null) debug.copy(b, FRAME_HEADER + 8)
  return b
}
