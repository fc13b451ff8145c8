// The process settings the control plane runs with, wherever it is started: the install manifest's
// Deployment sets them as environment variables (install/manifests.ts), and `weft control-plane`
// started without them (a shell, `npm start`'s demo, bench:cp) re-executes itself once with them
// (same pid: process.execve), before it loads anything large.
//
// Why (measured with `npm run bench:cp`, 1,000 proxies, README "Memory with many proxies"):
// - glibc keeps what a burst of large allocations freed (HTTP/2 frames, encoded snapshots, JSON
//   of the sources): its mmap threshold rises with every large block freed, so later ones come
//   from the heap and stay mapped. A fixed threshold of 128 KiB sends them to mmap (returned at
//   free), a trim threshold of 128 KiB gives the heap's top back, and two arenas instead of
//   8 x cores keep gRPC's and libuv's threads from each holding their own.
// - V8's young generation grows to 2 x 32 MB semi-spaces under the translator's allocation and
//   stays there; at most 16 MB each keeps ~30 MB off the RSS. Smaller still (2 MB: another ~20 MB)
//   cost the control plane twice the CPU per change (more scavenges, more promotion).
//
// WEFT_CP_DEFAULTS=1 keeps glibc's and V8's defaults (no re-execution). A variable the
// environment already has is left as it is (the operator's value wins).

/** Environment of the control plane's process (glibc's malloc reads it at process start). */
export const CONTROL_PLANE_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '131072',
  MALLOC_TRIM_THRESHOLD_: '131072',
}

/** V8 flags of the control plane's process (in NODE_OPTIONS: allowed there, read at start). */
export const CONTROL_PLANE_V8_FLAGS: readonly string[] = ['--max-semi-space-size=16']

const flagName = (flag: string): string => flag.split('=')[0]

function hasFlag(flag: string, execArgv: readonly string[], nodeOptions: string): boolean {
  const name = flagName(flag)
  const names = [name, name.replace(/-/g, '_')]
  // NODE_OPTIONS may quote its entries ("--flag=value")
  const given = [...execArgv, ...nodeOptions.split(/\s+/)].map((o) => flagName(o.replace(/^["']|["']$/g, '')))
  return given.some((g) => names.includes(g) || names.includes(g.replace(/-/g, '_')))
}

/** The control plane's settings added to `env` (what it already sets is kept). */
export function controlPlaneEnv(env: NodeJS.ProcessEnv, execArgv: readonly string[] = []): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env }
  for (const [k, v] of Object.entries(CONTROL_PLANE_ENV)) if (out[k] === undefined) out[k] = v
  const nodeOptions = out.NODE_OPTIONS ?? ''
  const add = CONTROL_PLANE_V8_FLAGS.filter((f) => !hasFlag(f, execArgv, nodeOptions))
  if (add.length > 0) out.NODE_OPTIONS = [nodeOptions, ...add].filter((s) => s !== '').join(' ')
  return out
}

/**
 * `env` without the control plane's settings (for the processes it starts that are not a control
 * plane: bench:cp's proxies).
 */
export function withoutControlPlaneEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env }
  delete out.WEFT_CP_REEXECUTED
  for (const [k, v] of Object.entries(CONTROL_PLANE_ENV)) if (out[k] === v) delete out[k]
  if (out.NODE_OPTIONS !== undefined) {
    const rest = out.NODE_OPTIONS.split(/\s+/).filter((o) => o !== '' && !CONTROL_PLANE_V8_FLAGS.includes(o)).join(' ')
    if (rest === '') delete out.NODE_OPTIONS
    else out.NODE_OPTIONS = rest
  }
  return out
}

/** Whether this process runs with every setting (or was told to keep the defaults). */
export function hasControlPlaneSettings(env: NodeJS.ProcessEnv = process.env, execArgv: readonly string[] = process.execArgv): boolean {
  if (env.WEFT_CP_DEFAULTS === '1') return true
  if (Object.keys(CONTROL_PLANE_ENV).some((k) => env[k] === undefined)) return false
  return CONTROL_PLANE_V8_FLAGS.every((f) => hasFlag(f, execArgv, env.NODE_OPTIONS ?? ''))
}

/**
 * Re-execute this process with the control plane's settings if it lacks them: same pid, same
 * arguments, stdio and signals, so a supervisor or container runtime sees no difference. Returns
 * (nothing changed) when the settings are there, when WEFT_CP_DEFAULTS=1, or when the process
 * cannot be replaced: it has an IPC channel (a parent's fork(), which would lose it) or Node has
 * no process.execve. Then the reason is returned.
 */
export function runWithControlPlaneSettings(): string | null {
  if (hasControlPlaneSettings() || process.env.WEFT_CP_REEXECUTED === '1') return null
  const execve = (process as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never }).execve
  if (typeof execve !== 'function') return 'this Node has no process.execve'
  if (process.channel !== undefined) return 'started with an IPC channel (fork)'
  const env = { ...controlPlaneEnv(process.env, process.execArgv), WEFT_CP_REEXECUTED: '1' } // once, whatever happens
  return execve.call(process, process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], env)
}
