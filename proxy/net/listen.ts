// server.listen() on host:port, without Node's DNS step for an IPv4 literal.
//
// Why: net.Server#listen({ host, port }) always resolves the host with dns.lookup, then skips
// IPv6 link-local results with net.isIPv6(), whose regular expression (one of the largest in
// Node) is compiled on its first use: ~10-12 ms of a sidecar's start (the admin and every
// listener bind an address), measured with --cpu-prof. net.BoundSocket (Node 26) binds an IP
// literal synchronously with no lookup, and listen() adopts it. Other hosts (names, IPv6) take
// the usual path. Errors are the server's 'error' event either way (bind errors: syscall 'bind').
import net from 'node:net'

export function listenOn(server: net.Server, host: string, port: number, onListening: () => void): void {
  if (!net.isIPv4(host)) {
    server.listen({ host, port }, onListening)
    return
  }
  let bound: net.BoundSocket
  try {
    bound = new net.BoundSocket({ host, port })
  } catch (err) {
    process.nextTick(() => server.emit('error', err))
    return
  }
  server.listen(bound, onListening)
}
