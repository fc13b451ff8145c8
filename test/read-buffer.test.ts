// The per-connection read buffer starts small (an idle keep-alive connection keeps it) and moves
// to the full size after a read that fills it; the bytes read are the bytes sent, in order, across
// the switch, for accepted sockets (readIntoBuffer), client sockets (net.connect onread) and after
// the reads are handed to a new owner (retargetReads).
import net from 'node:net'
import t from 'tap'
import { FIRST_READ_BUFFER_SIZE, onreadOptions, READ_BUFFER_SIZE, ReadBuffer, readIntoBuffer, retargetReads } from '../proxy/net/read-buffer.ts'

const pattern = (n: number, seed: number): Buffer => {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff
  return b
}

/** Collects what a reader is handed (copied: the bytes are valid only during the call). */
function collector() {
  const chunks: Buffer[] = []
  let waiting: { n: number; resolve: () => void } | null = null
  let total = 0
  return {
    onBytes: (buf: Buffer, n: number) => {
      chunks.push(Buffer.from(buf.subarray(0, n)))
      total += n
      if (waiting !== null && total >= waiting.n) {
        const w = waiting
        waiting = null
        w.resolve()
      }
    },
    until: (n: number) => (total >= n ? Promise.resolve() : new Promise<void>((resolve) => (waiting = { n, resolve }))),
    all: () => Buffer.concat(chunks),
  }
}

async function pair(): Promise<{ server: net.Server; accepted: net.Socket; client: net.Socket }> {
  const server = net.createServer({ pauseOnConnect: true })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const acceptedP = new Promise<net.Socket>((r) => server.once('connection', r))
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1')
  await new Promise<void>((r) => client.once('connect', () => r()))
  return { server, accepted: await acceptedP, client }
}

t.test('accepted socket: small first buffer, full size after a filled read, bytes intact', async (t) => {
  const { server, accepted, client } = await pair()
  t.teardown(() => {
    client.destroy()
    accepted.destroy()
    server.close()
  })
  const rb = new ReadBuffer()
  const c = collector()
  t.ok(readIntoBuffer(accepted, rb, c.onBytes), 'this Node reads accepted sockets into a user buffer')
  accepted.resume()
  const small = pattern(300, 1)
  client.write(small)
  await c.until(300)
  t.equal(rb.next().length, FIRST_READ_BUFFER_SIZE, 'a small read keeps the small buffer')
  const big = pattern(200_000, 2)
  client.write(big)
  await c.until(300 + big.length)
  t.equal(rb.next().length, READ_BUFFER_SIZE, 'a read that filled the buffer moved it to the full size')
  t.ok(c.all().equals(Buffer.concat([small, big])), 'every byte, in order')
})

t.test('client socket (onread) and a retargeted reader keep the growth', async (t) => {
  const server = net.createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const acceptedP = new Promise<net.Socket>((r) => server.once('connection', r))
  const rb = new ReadBuffer()
  const first = collector()
  const client = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, onread: onreadOptions(rb, first.onBytes) })
  const accepted = await acceptedP
  t.teardown(() => {
    client.destroy()
    accepted.destroy()
    server.close()
  })
  accepted.write(pattern(100, 3))
  await first.until(100)
  t.equal(rb.next().length, FIRST_READ_BUFFER_SIZE)
  const second = collector()
  t.ok(retargetReads(client, second.onBytes), 'the reads move to the new owner')
  const big = pattern(100_000, 4)
  accepted.write(big)
  await second.until(big.length)
  t.equal(first.all().length, 100, 'the first owner got nothing more')
  t.ok(second.all().equals(big), 'the new owner got every byte, in order')
  t.equal(rb.next().length, READ_BUFFER_SIZE, 'the retargeted callback still records filled reads')
})

t.test('a retained buffer is not read into again, at either size', async (t) => {
  const rb = new ReadBuffer()
  const a = rb.next()
  rb.retained = true
  const b = rb.next()
  t.not(a, b, 'a fresh buffer after retained')
  t.equal(b.length, FIRST_READ_BUFFER_SIZE)
  rb.filled = true
  const c = rb.next()
  t.equal(c.length, READ_BUFFER_SIZE)
  rb.filled = false
  rb.retained = true
  const d = rb.next()
  t.not(c, d)
  t.equal(d.length, READ_BUFFER_SIZE, 'stays at the full size')
})
