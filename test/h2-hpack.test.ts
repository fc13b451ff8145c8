// HPACK (proxy/h2/codec/hpack.ts, huffman.ts) against RFC 7541 Appendix C, then round trips of
// generated header lists through the proxy's encoder and decoder, then the decoder's limits.
import t from 'tap'
import fc from 'fast-check'
import { DECODE_ERROR, DECODE_OK, DECODE_TOO_LARGE, HpackDecoder, HpackEncoder } from '../proxy/h2/codec/hpack.ts'
import { huffmanDecode, huffmanEncode, huffmanLength } from '../proxy/h2/codec/huffman.ts'

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex')
const pairs = (l: [string, string][]): string[] => l.flat()

function decodeAll(d: HpackDecoder, b: Buffer, max = 1 << 20): { r: number; out: string[] } {
  const out: string[] = []
  const r = d.decode(b, 0, b.length, out, max)
  return { r, out }
}

t.test('C.2: one representation of each kind', async (t) => {
  let d = new HpackDecoder()
  t.same(decodeAll(d, hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572')), { r: DECODE_OK, out: ['custom-key', 'custom-header'] }, 'C.2.1 literal with indexing')
  t.equal(d.tableSize, 55)
  d = new HpackDecoder()
  t.same(decodeAll(d, hex('040c 2f73 616d 706c 652f 7061 7468')).out, [':path', '/sample/path'], 'C.2.2 without indexing')
  t.equal(d.tableSize, 0)
  d = new HpackDecoder()
  t.same(decodeAll(d, hex('1008 7061 7373 776f 7264 0673 6563 7265 74')).out, ['password', 'secret'], 'C.2.3 never indexed')
  t.equal(d.tableSize, 0)
  t.same(decodeAll(new HpackDecoder(), hex('82')).out, [':method', 'GET'], 'C.2.4 indexed')
})

const REQ1: [string, string][] = [[':method', 'GET'], [':scheme', 'http'], [':path', '/'], [':authority', 'www.example.com']]
const REQ2: [string, string][] = [...REQ1, ['cache-control', 'no-cache']]
const REQ3: [string, string][] = [[':method', 'GET'], [':scheme', 'https'], [':path', '/index.html'], [':authority', 'www.example.com'], ['custom-key', 'custom-value']]

t.test('C.3 / C.4: three requests on one connection, plain and Huffman', async (t) => {
  const plain = ['8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d', '8286 84be 5808 6e6f 2d63 6163 6865', '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65']
  const huff = ['8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff', '8286 84be 5886 a8eb 1064 9cbf', '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf']
  for (const [name, blocks] of [['C.3', plain], ['C.4', huff]] as const) {
    const d = new HpackDecoder()
    const want = [REQ1, REQ2, REQ3]
    const sizes = [57, 110, 164]
    for (let i = 0; i < 3; i++) {
      t.same(decodeAll(d, hex(blocks[i])), { r: DECODE_OK, out: pairs(want[i]) }, `${name}.${i + 1}`)
      t.equal(d.tableSize, sizes[i], `${name}.${i + 1} table size`)
    }
  }
})

t.test('C.5 / C.6: three responses with a 256-byte table (evictions), plain and Huffman', async (t) => {
  const date1 = 'Mon, 21 Oct 2013 20:13:21 GMT'
  const date2 = 'Mon, 21 Oct 2013 20:13:22 GMT'
  const loc = 'https://www.example.com'
  const want: [string, string][][] = [
    [[':status', '302'], ['cache-control', 'private'], ['date', date1], ['location', loc]],
    [[':status', '307'], ['cache-control', 'private'], ['date', date1], ['location', loc]],
    [[':status', '200'], ['cache-control', 'private'], ['date', date2], ['location', loc], ['content-encoding', 'gzip'], ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1']],
  ]
  const plain = [
    '4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
    '4803 3330 37c1 c0bf',
    '88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31',
  ]
  const huff = [
    '4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3',
    '4883 640e ffc1 c0bf',
    '88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
  ]
  const sizes = [222, 222, 215]
  for (const [name, blocks] of [['C.5', plain], ['C.6', huff]] as const) {
    const d = new HpackDecoder(256)
    for (let i = 0; i < 3; i++) {
      t.same(decodeAll(d, hex(blocks[i])), { r: DECODE_OK, out: pairs(want[i]) }, `${name}.${i + 1}`)
      t.equal(d.tableSize, sizes[i], `${name}.${i + 1} table size`)
    }
  }
})

t.test('Huffman: the RFC strings encode to the RFC bytes; every octet round-trips', async (t) => {
  const enc = (s: string): string => {
    const out = Buffer.alloc(huffmanLength(s))
    t.equal(huffmanEncode(s, out, 0), out.length)
    return out.toString('hex')
  }
  t.equal(enc('www.example.com'), 'f1e3c2e5f23a6ba0ab90f4ff')
  t.equal(enc('no-cache'), 'a8eb10649cbf')
  t.equal(enc('custom-key'), '25a849e95ba97d7f')
  t.equal(enc('302'), '6402')
  let all = ''
  for (let i = 0; i < 256; i++) all += String.fromCharCode(i)
  const b = Buffer.alloc(huffmanLength(all))
  huffmanEncode(all, b, 0)
  t.equal(huffmanDecode(b, 0, b.length), all)
  t.equal(huffmanDecode(hex('ff'), 0, 1), null, '8 bits of padding')
  t.equal(huffmanDecode(hex('fffffffc'), 0, 4), null, 'EOS decoded')
  t.equal(huffmanDecode(hex('00'), 0, 1), null, 'padding not all ones ("0" is 5 zero bits, then 000)')
})

const latin1 = fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 60 }).map((a) => String.fromCharCode(...a))
const tokenName = fc.stringMatching(/^[a-z0-9-]{1,20}$/)
const field = fc.oneof(
  fc.tuple(fc.constantFrom(':status', 'content-type', 'grpc-status', 'server', 'date', 'content-length', 'x-a', 'set-cookie'), latin1),
  fc.tuple(tokenName, latin1),
  fc.tuple(fc.constantFrom(':status'), fc.constantFrom('200', '204', '404', '500')),
)

t.test('round trip: any header lists through one encoder and one decoder, with table size changes', async (t) => {
  const r = fc.check(fc.property(fc.array(fc.tuple(fc.array(field, { maxLength: 12 }), fc.option(fc.integer({ min: 0, max: 8192 }), { freq: 5 }))), (blocks) => {
    const e = new HpackEncoder()
    const d = new HpackDecoder(4096)
    for (const [fields, limit] of blocks) {
      if (limit !== null) e.setPeerLimit(limit)
      const flat = fields.flat()
      const b = e.encode(flat)
      const out: string[] = []
      if (d.decode(b, 0, b.length, out, 1 << 20) !== DECODE_OK) return false
      if (JSON.stringify(out) !== JSON.stringify(flat)) return false
    }
    return true
  }), { seed: 42, numRuns: 300 })
  t.equal(r.failed, false, r.failed ? `counterexample: ${JSON.stringify(r.counterexample)}` : 'every generated header list decodes to itself')
  t.equal(r.numRuns, 300, '300 generated connections')
})

t.test('decoder limits: HPACK bomb, table size, truncation, bad indices', async (t) => {
  // one 4000-byte entry, then 10,000 references to it: 40 MB decoded from 10 KB
  const e = new HpackEncoder()
  const big = 'x'.repeat(1900)
  const first = e.encode(['x-bomb', big])
  const refs = Buffer.alloc(10_000, 0xbe) // index 62: the newest dynamic entry
  const d = new HpackDecoder()
  t.equal(decodeAll(d, first).r, DECODE_OK)
  const { r, out } = decodeAll(d, refs, 16 * 1024)
  t.equal(r, DECODE_TOO_LARGE, 'refused by its decoded size')
  t.ok(out.length <= 16, `kept ${out.length / 2} fields, not 10,000`)
  t.equal(decodeAll(d, hex('be')).r, DECODE_OK, 'the table is still in step: the next block decodes')
  t.equal(decodeAll(new HpackDecoder(4096), hex('3fe21f')).r, DECODE_ERROR, 'size update above SETTINGS_HEADER_TABLE_SIZE')
  t.equal(decodeAll(new HpackDecoder(), hex('82 3f e1 1f')).r, DECODE_ERROR, 'size update after a field')
  t.equal(decodeAll(new HpackDecoder(), hex('80')).r, DECODE_ERROR, 'index 0')
  t.equal(decodeAll(new HpackDecoder(), hex('be')).r, DECODE_ERROR, 'index past the table')
  t.equal(decodeAll(new HpackDecoder(), hex('400a 6375 7374')).r, DECODE_ERROR, 'string past the block')
  t.equal(decodeAll(new HpackDecoder(), hex('ff ff ff ff ff 7f')).r, DECODE_ERROR, 'integer too large')
  const crlf = new HpackDecoder()
  t.same(decodeAll(crlf, hex('40 03 782d61 04 610d0a62')).out, ['x-a', 'a\r\nb'], 'CR LF kept for the validator, not dropped')
})
