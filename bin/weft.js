#!/usr/bin/env node
// Entry point of the `weft` command. Weft is TypeScript run by Node's type stripping (Node >= 24).
// When started by an older system Node, re-run with the Node pinned in the project's node_modules
// (the `node` dependency) as a child process. This process then stands in for it, the way a
// container runtime or a supervisor sees it: SIGTERM, SIGINT and SIGHUP are passed on to the child
// (which drains), and this process ends the way the child ended (its exit code, or the same
// signal). If this process dies without passing anything on (SIGKILL), the child sees its IPC
// channel close and drains as on SIGTERM, so it never outlives its parent.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const major = Number(process.versions.node.split('.')[0])
if (major >= 24) {
  const wrapped = process.env.WEFT_WRAPPED === '1'
  delete process.env.WEFT_WRAPPED // not for processes weft starts
  if (wrapped && process.channel !== undefined) {
    // Started by the wrapper below: its death is our SIGTERM. The channel must not keep us alive.
    process.channel.unref()
    process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'))
  }
  // The package ships compiled JavaScript (dist/, built by `npm pack`'s prepack): Node does not
  // strip types under node_modules. A checkout runs the TypeScript.
  const compiled = new URL('../dist/cli/weft.js', import.meta.url)
  await import(existsSync(fileURLToPath(compiled)) ? compiled.href : '../cli/weft.ts')
} else {
  const pinned = pinnedNode()
  if (pinned === null) {
    const root = dirname(dirname(fileURLToPath(import.meta.url)))
    process.stderr.write(`weft needs Node >= 24 (found ${process.version}); run 'npm install' in ${root}\n`)
    process.exit(1)
  }
  const child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, WEFT_WRAPPED: '1' },
  })
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.on(signal, () => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    })
  }
  child.on('error', (err) => {
    process.stderr.write(`weft: cannot start ${pinned}: ${err.message}\n`)
    process.exit(1)
  })
  child.on('exit', (code, signal) => {
    if (signal !== null) {
      // end the same way, so a supervisor sees what happened to the real process
      process.removeAllListeners(signal)
      process.kill(process.pid, signal)
      return
    }
    process.exit(code ?? 1)
  })
}

/** The `node` dependency's binary, wherever npm put it (the project's node_modules, or hoisted). */
function pinnedNode() {
  const root = dirname(dirname(fileURLToPath(import.meta.url)))
  const own = join(root, 'node_modules', 'node', 'bin', 'node')
  if (existsSync(own)) return own
  try {
    const pkg = createRequire(import.meta.url).resolve('node/package.json')
    const bin = join(dirname(pkg), 'bin', 'node')
    return existsSync(bin) ? bin : null
  } catch {
    return null
  }
}
