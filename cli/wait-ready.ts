// `weft wait-ready --port 15000 --timeout 120`: the classic-layout proxy's postStart hook. The
// kubelet starts the next container only when postStart returns, so the app starts after the
// proxy's /ready says 200 (as Istio's holdApplicationUntilProxyStarts). Exit 0 ready, 1 timed out.
import { request } from 'node:http'
import type { Command } from 'commander'

function ready(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/ready', timeout: 1000 }, (res) => {
      res.resume()
      resolve(res.statusCode === 200)
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(false))
    req.end()
  })
}

export async function waitReady(port: number, timeoutMs: number, intervalMs = 200): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await ready(port)) return true
    if (Date.now() + intervalMs > deadline) return false
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}

export function registerWaitReady(program: Command): void {
  program
    .command('wait-ready')
    .description('wait until the local proxy\'s admin /ready answers 200 (the classic sidecar\'s postStart hook); exit 0 ready, 1 timed out')
    .option('--port <port>', 'the proxy\'s admin port', '15000')
    .option('--timeout <seconds>', 'give up after this long', '120')
    .action(async (opts: { port: string; timeout: string }) => {
      const ok = await waitReady(Number(opts.port), Number(opts.timeout) * 1000)
      if (!ok) process.stderr.write(`weft wait-ready: 127.0.0.1:${opts.port}/ready not 200 after ${opts.timeout} s\n`)
      process.exitCode = ok ? 0 : 1
    })
}
