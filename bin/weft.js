#!/usr/bin/env node
// Entry point of the `weft` command. Weft is TypeScript run by Node's type stripping (Node >= 24).
// When started by an older system Node, re-run with the Node pinned in the project's node_modules.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const major = Number(process.versions.node.split('.')[0])
if (major >= 24) {
  await import('../cli/weft.ts')
} else {
  const root = dirname(dirname(fileURLToPath(import.meta.url)))
  const pinned = join(root, 'node_modules', 'node', 'bin', 'node')
  if (!existsSync(pinned)) {
    process.stderr.write(`weft needs Node >= 24 (found ${process.version}); run 'npm install' in ${root}\n`)
    process.exit(1)
  }
  const r = spawnSync(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' })
  process.exit(r.status ?? 1)
}
