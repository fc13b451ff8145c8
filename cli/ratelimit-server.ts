// `weft ratelimit-server`: a rate limit service for the sidecars' globalRateLimit (Envoy's RLS
// protocol), limits configured as Envoy's ratelimit service configures them; counters in Redis
// (shared by every replica, kept across restarts) or, without --redis, in memory (one instance).
// The config file or folder is watched: a good edit replaces the limits, a bad one is reported
// (file:line:column) and the last good limits stay. Implementation: control-plane/ratelimit/.
import type { Command } from 'commander'

export function registerRateLimitServer(program: Command): void {
  program
    .command('ratelimit-server')
    .description('serve global rate limits to the sidecars (Envoy rate limit service protocol, gRPC); counters in Redis or in memory')
    .requiredOption('-c, --config <path>', 'limits: a YAML file or a folder of them (domain, descriptors: key, value, rate_limit {unit, requests_per_unit}, descriptors)')
    .option('--listen <host:port>', 'gRPC address', '127.0.0.1:8081')
    .option('--redis <url>', 'keep the counters in Redis (redis://host:port[/db]); default: in memory, for one instance')
    .option('--log-level <level>', 'log level (trace, debug, info, warn, error); default $WEFT_LOG_LEVEL or info')
    .action(async (opts: { config: string; listen: string; redis?: string; logLevel?: string }) => {
      if (opts.logLevel !== undefined) process.env.WEFT_LOG_LEVEL = opts.logLevel
      const { createLogger } = await import('../proxy/log.ts')
      const { loadLimits } = await import('../control-plane/ratelimit/config.ts')
      const { startRateLimitServer, MemoryStore, redisStore } = await import('../control-plane/ratelimit/server.ts')
      const { formatConfigError } = await import('../api/errors.ts')
      const { watch } = await import('node:fs')
      const log = createLogger(process.env.WEFT_LOG_LEVEL ?? 'info').child({ component: 'ratelimit-server' })
      const first = await loadLimits(opts.config)
      if (!first.ok) {
        for (const e of first.errors) process.stderr.write(formatConfigError(e) + '\n')
        process.stderr.write(`weft ratelimit-server: ${opts.config}: invalid limits, not started\n`)
        process.exitCode = 1
        return
      }
      const store = opts.redis !== undefined ? await redisStore(opts.redis, log) : new MemoryStore()
      let server
      try {
        server = await startRateLimitServer({ address: opts.listen, domains: first.domains, store, log })
      } catch (err) {
        process.stderr.write(`weft ratelimit-server: cannot listen on ${opts.listen}: ${(err as Error).message}\n`)
        await store.close()
        process.exitCode = 1
        return
      }
      log.info({ listen: opts.listen, port: server.port, config: opts.config, domains: [...first.domains.keys()], store: opts.redis ?? 'memory' }, 'rate limit server ready')
      let timer: NodeJS.Timeout | null = null
      const watcher = watch(opts.config, () => {
        if (timer !== null) clearTimeout(timer)
        timer = setTimeout(async () => {
          const r = await loadLimits(opts.config)
          if (!r.ok) {
            for (const e of r.errors) log.error({ code: e.code, file: e.file, line: e.line, column: e.column, path: e.path }, formatConfigError(e))
            log.warn('limits not reloaded; the last good ones stay')
            return
          }
          server.setDomains(r.domains)
          log.info({ domains: [...r.domains.keys()] }, 'limits reloaded')
        }, 100)
      })
      await new Promise<void>((resolve) => {
        for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => resolve())
      })
      watcher.close()
      await server.close()
      log.info('stopped')
    })
}
