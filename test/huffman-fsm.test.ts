// The HPACK Huffman decoder's precomputed state machine (proxy/h2/codec/huffman-fsm.ts, written by
// build/huffman-fsm.ts) is the one its builder makes, and decodes as before.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { huffmanFsmSource, HUFFMAN_FSM_FILE } from '../build/huffman-fsm.ts'
import { HUFFMAN_FSM_LE } from '../proxy/h2/codec/huffman-fsm.ts'
import { buildHuffmanFsm, huffmanDecode, huffmanEncode, huffmanLength, packHuffmanFsm, unpackHuffmanFsm } from '../proxy/h2/codec/huffman.ts'

t.test('the generated file holds the tables buildHuffmanFsm makes (node build/huffman-fsm.ts)', async (t) => {
  t.equal(readFileSync(HUFFMAN_FSM_FILE, 'utf8'), huffmanFsmSource(), 'up to date')
  t.type(HUFFMAN_FSM_LE, 'string')
  const built = buildHuffmanFsm()
  const read = unpackHuffmanFsm(HUFFMAN_FSM_LE!)
  t.equal(read.accept.length, built.accept.length, `${built.accept.length} states`)
  t.same([...read.next], [...built.next])
  t.same([...read.emit], [...built.emit])
  t.same([...read.accept], [...built.accept])
  t.equal(packHuffmanFsm(read), HUFFMAN_FSM_LE)
})

t.test('decoding through the precomputed tables: every byte, RFC 7541 C.4.1, and invalid padding', async (t) => {
  let all = ''
  for (let c = 0; c < 256; c++) all += String.fromCharCode(c)
  const b = Buffer.alloc(huffmanLength(all))
  huffmanEncode(all, b, 0)
  t.equal(huffmanDecode(b, 0, b.length), all)
  const c41 = Buffer.from('f1e3c2e5f23a6ba0ab90f4ff', 'hex')
  t.equal(huffmanDecode(c41, 0, c41.length), 'www.example.com')
  t.equal(huffmanDecode(Buffer.from([0x00]), 0, 1), null, 'padding of zeros is not EOS')
})
