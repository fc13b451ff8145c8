// HPACK (RFC 7541): one decoder per connection direction that receives header blocks, one encoder
// per direction that sends them. Field names and values are latin1 strings (one char per octet),
// so a CR, LF or NUL a peer sent is still there for proxy/h2/validate.ts to refuse: nothing is
// dropped or repaired here.
//
// Decoder limits (a peer's bytes decide how much it would allocate):
// - the dynamic table never exceeds the size the proxy advertised (SETTINGS_HEADER_TABLE_SIZE);
// - the decoded header list is counted as it grows (name + value + 32 per field, RFC 9113
//   §6.5.2): past maxListSize no more field is kept (an HPACK bomb, a table entry referenced
//   thousands of times, costs a counter, not memory) but the block is still decoded to its end,
//   so the table stays in step with the peer's and the connection can go on (the stream is
//   refused by the caller);
// - integers beyond 2^28 and strings past the end of the block are COMPRESSION_ERROR.
import { huffmanDecode, huffmanEncode, huffmanLength } from './huffman.ts'
import { STATIC_TABLE } from './tables.ts'
import { fieldClean } from '../validate.ts'

export const DECODE_OK = 0
/** the list exceeded maxListSize: fields past it were not kept (the table is in step) */
export const DECODE_TOO_LARGE = 1
/** a connection error (COMPRESSION_ERROR, RFC 9113 §4.3): the table is no longer in step */
export const DECODE_ERROR = -1

const ENTRY_OVERHEAD = 32
const STATIC_LEN = STATIC_TABLE.length // 61
const MAX_INT = 2 ** 28

/** The dynamic table (RFC 7541 §2.3.2): newest entry at the end of the arrays. */
class DynamicTable {
  names: string[] = []
  values: string[] = []
  /** the entry passes the character checks of proxy/h2/validate.ts (fieldClean) */
  clean: boolean[] = []
  size = 0
  limit: number

  constructor(limit: number) {
    this.limit = limit
  }

  add(name: string, value: string, clean: boolean): void {
    const s = name.length + value.length + ENTRY_OVERHEAD
    this.evictTo(this.limit - s)
    if (s > this.limit) return // larger than the table: the table is emptied, nothing added (§4.4)
    this.names.push(name)
    this.values.push(value)
    this.clean.push(clean)
    this.size += s
  }

  evictTo(target: number): void {
    while (this.size > target && this.names.length > 0) {
      this.size -= this.names[0].length + this.values[0].length + ENTRY_OVERHEAD
      this.names.shift()
      this.values.shift()
      this.clean.shift()
    }
  }

  setLimit(limit: number): void {
    this.limit = limit
    this.evictTo(limit)
  }
}

export class HpackDecoder {
  private readonly table: DynamicTable
  /** the most the peer may set the table to: our SETTINGS_HEADER_TABLE_SIZE */
  private readonly maxLimit: number
  /** fields decoded by the last decode() and the list size it reached */
  listSize = 0
  /**
   * Every field of the last block passes validate.ts's character checks (fieldClean): a field of
   * the tables was checked once, when it was added; only literals are checked per block. The head
   * checks then skip the characters (checkRequestHead's `clean`).
   */
  clean = true

  constructor(maxTableSize = 4096) {
    this.maxLimit = maxTableSize
    this.table = new DynamicTable(maxTableSize)
  }

  /** entries in the dynamic table (tests) */
  get tableSize(): number {
    return this.table.size
  }

  /**
   * Decode one complete header block b[start..end) into out ([name, value, …]). Returns DECODE_OK,
   * DECODE_TOO_LARGE (out holds the fields up to maxListSize) or DECODE_ERROR.
   */
  decode(b: Buffer, start: number, end: number, out: string[], maxListSize: number): number {
    const t = this.table
    let p = start
    let size = 0
    let fields = false
    let over = false
    let clean = true
    while (p < end) {
      const c = b[p]
      let name: string
      let value: string
      if ((c & 0x80) !== 0) {
        // indexed field (§6.1)
        const r = readInt(b, p, end, 7)
        if (r < 0) return DECODE_ERROR
        p = INT_END
        if (r === 0) return DECODE_ERROR
        if (r <= STATIC_LEN) {
          const e = STATIC_TABLE[r - 1]
          name = e[0]
          value = e[1]
        } else {
          const i = t.names.length - 1 - (r - STATIC_LEN - 1)
          if (i < 0) return DECODE_ERROR
          name = t.names[i]
          value = t.values[i]
          if (!t.clean[i]) clean = false
        }
      } else if ((c & 0xe0) === 0x20) {
        // dynamic table size update (§6.3): only before the first field of a block
        if (fields) return DECODE_ERROR
        const r = readInt(b, p, end, 5)
        if (r < 0 || r > this.maxLimit) return DECODE_ERROR
        p = INT_END
        t.setLimit(r)
        continue
      } else {
        // literal (§6.2): with incremental indexing (01), without (0000), never indexed (0001)
        const incremental = (c & 0x40) !== 0
        const r = readInt(b, p, end, incremental ? 6 : 4)
        if (r < 0) return DECODE_ERROR
        p = INT_END
        if (r === 0) {
          const s = readString(b, p, end)
          if (s === null) return DECODE_ERROR
          name = s
          p = STR_END
        } else if (r <= STATIC_LEN) name = STATIC_TABLE[r - 1][0]
        else {
          const i = t.names.length - 1 - (r - STATIC_LEN - 1)
          if (i < 0) return DECODE_ERROR
          name = t.names[i]
        }
        const v = readString(b, p, end)
        if (v === null) return DECODE_ERROR
        value = v
        p = STR_END
        const ok = fieldClean(name, value)
        if (!ok) clean = false
        if (incremental) t.add(name, value, ok)
      }
      fields = true
      size += name.length + value.length + ENTRY_OVERHEAD
      if (size > maxListSize) over = true
      if (!over) out.push(name, value)
    }
    this.listSize = size
    this.clean = clean
    return over ? DECODE_TOO_LARGE : DECODE_OK
  }
}

// readInt/readString return their value and leave the position after it here (no allocation)
let INT_END = 0
let STR_END = 0

/** An integer with an n-bit prefix at b[p] (§5.1); -1 if truncated or too large. */
function readInt(b: Buffer, p: number, end: number, n: number): number {
  const mask = (1 << n) - 1
  let v = b[p++] & mask
  if (v < mask) {
    INT_END = p
    return v
  }
  let m = 0
  for (;;) {
    if (p >= end) return -1
    const c = b[p++]
    v += (c & 0x7f) * 2 ** m
    m += 7
    if (v > MAX_INT) return -1
    if ((c & 0x80) === 0) break
  }
  INT_END = p
  return v
}

function readString(b: Buffer, p: number, end: number): string | null {
  if (p >= end) return null
  const huff = (b[p] & 0x80) !== 0
  const len = readInt(b, p, end, 7)
  if (len < 0) return null
  p = INT_END
  if (p + len > end) return null
  STR_END = p + len
  if (len === 0) return ''
  return huff ? huffmanDecode(b, p, p + len) : b.latin1Slice(p, p + len)
}

// ---- encoder ----------------------------------------------------------------------------------

/** static table: (name, value) -> index and name -> first index */
const STATIC_EXACT = new Map<string, Map<string, number>>()
const STATIC_NAME = new Map<string, number>()
for (let i = 0; i < STATIC_LEN; i++) {
  const [n, v] = STATIC_TABLE[i]
  if (!STATIC_NAME.has(n)) STATIC_NAME.set(n, i + 1)
  let m = STATIC_EXACT.get(n)
  if (m === undefined) STATIC_EXACT.set(n, (m = new Map()))
  if (!m.has(v)) m.set(v, i + 1)
}

/** fields never put in the dynamic table: values that change every message or must not be kept */
const NOT_INDEXED = new Set(['etag', 'set-cookie', 'authorization', 'proxy-authorization', 'cookie', ':path', 'grpc-message', 'x-request-id', 'traceparent', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'age'])

const SCRATCH_MIN = 16 * 1024
/** names an encoder remembers (EncName); past it a name is looked up anew and never indexed */
const MAX_NAMES = 512

/** What an encoder knows of one name: one lookup per field instead of one per table. */
class EncName {
  /** the first static entry of this name (1-based), 0: none */
  readonly staticIndex: number
  /** the static entries of this name by value */
  readonly staticValues: Map<string, number> | null
  /** a value of it may go into the dynamic table */
  readonly indexable: boolean
  /** this encoder's dynamic entries of this name: value -> insertion number */
  dyn: Map<string, number> | null = null
  /** the name as an HPACK string literal (used while it has no index) */
  private literalBytes: Buffer | null = null
  readonly name: string

  constructor(name: string, indexable: boolean) {
    this.name = name
    this.staticIndex = STATIC_NAME.get(name) ?? 0
    this.staticValues = STATIC_EXACT.get(name) ?? null
    this.indexable = indexable
  }

  get literal(): Buffer {
    if (this.literalBytes === null) {
      const b = Buffer.allocUnsafe(this.name.length + 6)
      this.literalBytes = b.subarray(0, writeString(b, 0, this.name, true))
    }
    return this.literalBytes
  }
}

export class HpackEncoder {
  /** what the peer allows (its SETTINGS_HEADER_TABLE_SIZE), and the size this encoder uses */
  private limit = 4096
  private pendingUpdate = -1
  private size = 0
  /** entries by insertion number: the oldest live one is `evicted` */
  private readonly entryNames: string[] = []
  private readonly entryValues: string[] = []
  private inserted = 0
  private evicted = 0
  private readonly names = new Map<string, EncName>()
  private scratch = Buffer.allocUnsafe(SCRATCH_MIN)

  /** The peer's SETTINGS_HEADER_TABLE_SIZE changed: the next block starts with a size update. */
  setPeerLimit(n: number): void {
    const use = Math.min(n, 4096) // never more than the default: bounded memory per connection
    if (use === this.limit && this.pendingUpdate === -1) return
    this.limit = use
    this.pendingUpdate = this.pendingUpdate === -1 ? use : Math.min(this.pendingUpdate, use)
    this.evictTo(use)
  }

  /** Encode [name, value, …] (names lowercase) into a new Buffer. */
  encode(fields: readonly string[]): Buffer {
    const n = this.encodeScratch(fields)
    return Buffer.from(this.scratch.subarray(0, n))
  }

  /** Encode into the encoder's own buffer (`scratch`, valid until the next call); its length. */
  encodeScratch(fields: readonly string[]): number {
    let p = this.begin()
    for (let i = 0; i + 1 < fields.length; i += 2) p = this.add(p, fields[i], fields[i + 1])
    return p
  }

  /**
   * Start a header block in the scratch buffer (a pending table size update first); then add()
   * each field at the position returned, and read scratchBuffer[0..the last position).
   */
  begin(): number {
    let p = 0
    if (this.pendingUpdate !== -1) {
      p = writeInt(this.scratch, p, 5, 0x20, this.pendingUpdate)
      if (this.pendingUpdate !== this.limit) p = writeInt(this.scratch, p, 5, 0x20, this.limit)
      this.pendingUpdate = -1
    }
    return p
  }

  /** One field (name lowercase) at p of the block begun; returns the position after it. */
  add(p: number, name: string, value: string): number {
    // an index takes at most 6 octets, each length prefix at most 6: room for the worst case
    const need = p + name.length + value.length + 18
    if (this.scratch.length < need) {
      const b = Buffer.allocUnsafe(Math.max(need, 2 * this.scratch.length))
      this.scratch.copy(b, 0, 0, p)
      this.scratch = b
    }
    return this.field(this.scratch, p, name, value)
  }

  get scratchBuffer(): Buffer {
    return this.scratch
  }

  private nameOf(name: string): EncName {
    let e = this.names.get(name)
    if (e === undefined) {
      const keep = this.names.size < MAX_NAMES
      e = new EncName(name, keep && !NOT_INDEXED.has(name))
      if (keep) this.names.set(name, e)
    }
    return e
  }

  private field(out: Buffer, p: number, name: string, value: string): number {
    const en = this.nameOf(name)
    const sv = en.staticValues
    if (sv !== null) {
      const s = sv.get(value)
      if (s !== undefined) return writeInt(out, p, 7, 0x80, s)
    }
    const dm = en.dyn
    if (dm !== null) {
      const id = dm.get(value)
      if (id !== undefined && id >= this.evicted) return writeInt(out, p, 7, 0x80, STATIC_LEN + this.inserted - id)
    }
    const entry = name.length + value.length + ENTRY_OVERHEAD
    const indexed = en.indexable && entry <= this.limit >>> 1
    // name: a static index, else a dynamic one of the same name, else literal
    let ni = en.staticIndex
    if (ni === 0 && dm !== null) {
      for (const id of dm.values()) {
        if (id >= this.evicted) {
          ni = STATIC_LEN + this.inserted - id
          break
        }
      }
    }
    if (indexed) p = writeInt(out, p, 6, 0x40, ni)
    else p = writeInt(out, p, 4, 0x00, ni)
    if (ni === 0) {
      const lit = en.literal
      lit.copy(out, p)
      p += lit.length
    }
    // a value that is not kept (a request id, a path) is sent as it is: Huffman would cost CPU on
    // every message for a quarter of its bytes
    p = writeString(out, p, value, indexed)
    if (indexed) this.insert(en, value, entry)
    return p
  }

  private insert(en: EncName, value: string, entry: number): void {
    this.evictTo(this.limit - entry)
    const id = this.inserted++
    this.entryNames.push(en.name)
    this.entryValues.push(value)
    this.size += entry
    if (en.dyn === null) en.dyn = new Map()
    en.dyn.set(value, id)
  }

  private evictTo(target: number): void {
    while (this.size > target && this.evicted < this.inserted) {
      const n = this.entryNames.shift()!
      const v = this.entryValues.shift()!
      this.size -= n.length + v.length + ENTRY_OVERHEAD
      const m = this.names.get(n)?.dyn
      if (m != null && m.get(v) === this.evicted) m.delete(v)
      this.evicted++
    }
  }
}

function writeInt(out: Buffer, p: number, n: number, flags: number, v: number): number {
  const mask = (1 << n) - 1
  if (v < mask) {
    out[p++] = flags | v
    return p
  }
  out[p++] = flags | mask
  v -= mask
  while (v >= 0x80) {
    out[p++] = (v & 0x7f) | 0x80
    v = Math.floor(v / 128)
  }
  out[p++] = v
  return p
}

function writeString(out: Buffer, p: number, s: string, huffman: boolean): number {
  const h = huffman && s.length > 4 ? huffmanLength(s) : s.length
  if (h < s.length) {
    p = writeInt(out, p, 7, 0x80, h)
    return huffmanEncode(s, out, p)
  }
  p = writeInt(out, p, 7, 0, s.length)
  return p + out.latin1Write(s, p)
}
