// proxy/net/listen.ts: a listener or the admin server on an IPv4 literal binds without Node's DNS
// lookup (net.BoundSocket), and behaves as server.listen({ host, port }) otherwise: the port it
// got, connections, EADDRINUSE as an 'error' event; names and IPv6 take the usual path.
import t from 'tap'
import dns from 'node:dns'
import net from 'node:net'
import { listenOn } from '../proxy/net/listen.ts'

function listen(host: string, port: number): Promise<net.Server> {
  const server = net.createServer((s) => s.end('hi\n'))
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    listenOn(server, host, port, () => resolve(server))
  })
}

function read(port: number, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve, reject) => {
    let b = ''
    net.connect(port, host).on('data', (d) => (b += d)).on('end', () => resolve(b)).on('error', reject)
  })
}

t.test('an IPv4 literal: bound without a lookup, port 0 gets a port, connections served', async (t) => {
  const real = dns.lookup
  let n = 0
  ;(dns as { lookup: unknown }).lookup = (...a: unknown[]) => {
    n++
    return (real as (...x: unknown[]) => void)(...a)
  }
  t.teardown(() => void ((dns as { lookup: unknown }).lookup = real))
  const s = await listen('127.0.0.1', 0)
  t.teardown(() => s.close())
  const a = s.address() as net.AddressInfo
  t.equal(a.address, '127.0.0.1')
  t.ok(a.port > 0, 'a port was assigned')
  t.equal(await read(a.port), 'hi\n')
  t.equal(n, 0, 'no dns.lookup')
  const byName = await listen('localhost', 0)
  t.teardown(() => byName.close())
  t.equal(n, 1, 'a name is looked up as before')
  t.equal(await read((byName.address() as net.AddressInfo).port, (byName.address() as net.AddressInfo).address), 'hi\n')
})

t.test('a port in use: EADDRINUSE as the server\'s error event, after listenOn returned', async (t) => {
  const first = await listen('127.0.0.1', 0)
  t.teardown(() => first.close())
  const port = (first.address() as net.AddressInfo).port
  const second = net.createServer()
  let returned = false
  const err = new Promise<NodeJS.ErrnoException>((resolve) => second.once('error', resolve))
  listenOn(second, '127.0.0.1', port, () => t.fail('listening'))
  returned = true
  const e = await err
  t.ok(returned)
  t.equal(e.code, 'EADDRINUSE')
  t.equal(second.listening, false)
})

t.test('IPv6: the usual path', async (t) => {
  const s = await listen('::1', 0).catch(() => null)
  if (s === null) return t.pass('no ::1 on this machine')
  t.teardown(() => s.close())
  t.equal(await read((s.address() as net.AddressInfo).port, '::1'), 'hi\n')
})
