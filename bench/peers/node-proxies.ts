// Starts the Node-based reference proxies (fast-proxy, http-proxy) as single Node processes.
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { spawnGroup } from '../spawn.ts'
import { finishStart } from './common.ts'
import type { Peer, PeerContext } from './types.ts'

const here = path.dirname(fileURLToPath(import.meta.url))

function startNodePeer(name: string, script: string, ctx: PeerContext): Promise<Peer> {
  const file = path.join(here, script)
  const proc = spawnGroup(name, process.execPath, ['--no-deprecation', file, String(ctx.port), ctx.upstreamPorts.join(',')], {
    logFile: path.join(ctx.dir, `${name}.log`),
    env: { ...process.env, NODE_ENV: 'production' },
  })
  return finishStart({ name, proc, port: ctx.port, upstreamPorts: ctx.upstreamPorts, info: { script: file } })
}

export const startFastProxy = (ctx: PeerContext): Promise<Peer> => startNodePeer('fast-proxy', 'fast-proxy-server.ts', ctx)
export const startHttpProxy = (ctx: PeerContext): Promise<Peer> => startNodePeer('http-proxy', 'http-proxy-server.ts', ctx)
