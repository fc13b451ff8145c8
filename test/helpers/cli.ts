// Run the real `weft` CLI (node bin/weft.js) as a user would.
import { execFile } from 'node:child_process'
import { ROOT, WEFT_BIN } from './sidecar.ts'

export interface Run {
  code: number
  stdout: string
  stderr: string
}

/** `node bin/weft.js ARGS`, bounded by timeoutMs (killed after: code -1). */
export function weft(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [WEFT_BIN, ...args], { cwd: ROOT, timeout: opts.timeoutMs ?? 20_000, env: { ...process.env, ...opts.env } }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1
      resolve({ code, stdout, stderr })
    })
  })
}

