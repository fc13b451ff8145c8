// The process settings the control plane runs with, wherever it is started: the install manifest's
// Deployment sets them as environment variables (install/manifests.ts), `weft control-plane`
// started without them (a shell, `npm start`'s demo, bench:cp) re-executes itself once with them
// (same pid: process.execve), before it loads anything large, and bin/weft.js passes them to the
// control plane it starts under the pinned Node (its child cannot re-execute itself: IPC channel).
//
// Why (measured with `npm run bench:cp`, 1,000 proxies, README "Memory with many proxies"):
// glibc keeps what a burst of large allocations freed (complete snapshots being written, grpc-js's
// copy of each message, JSON of the sources): its mmap threshold rises with every large block
// freed, so later ones come from the heap and stay mapped (50-90 MB at 1,000 proxies). A fixed
// threshold of 128 KiB sends them to mmap (returned at free; the setting that matters), a trim
// threshold of 128 KiB gives the heap's top back, and two arenas instead of 8 x cores keep gRPC's,
// libuv's and V8's threads from each holding their own. None of them makes an endpoint change
// fault pages or enter the kernel measurably more (300-1,600 page faults a change with or
// without them).
//
// V8's flags are left at their defaults: a 16 MB cap on the semi-spaces is worth another ~30-40 MB
// with these, but means more scavenges, which promote the streams' objects in flight across a
// change sooner (more mark-compacts of the ~140 MB old generation), and with it the push latency
// was lost; without it the 400 MB target is met.
//
// WEFT_CP_DEFAULTS=1 keeps glibc's defaults (no re-execution). A variable the environment already
// has is left as it is (the operator's value wins).

/** Environment of the control plane's process (glibc's malloc reads it at process start). */
export const CONTROL_PLANE_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '131072',
  MALLOC_TRIM_THRESHOLD_: '131072',
}

/** The control plane's settings added to `env` (what it already sets is kept). */
export function controlPlaneEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env }
  for (const [k, v] of Object.entries(CONTROL_PLANE_ENV)) if (out[k] === undefined) out[k] = v
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
  return out
}

/** Whether this process runs with every setting (or was told to keep the defaults). */
export function hasControlPlaneSettings(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.WEFT_CP_DEFAULTS === '1') return true
  return Object.keys(CONTROL_PLANE_ENV).every((k) => env[k] !== undefined)
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
  const env = { ...controlPlaneEnv(process.env), WEFT_CP_REEXECUTED: '1' } // once, whatever happens
  return execve.call(process, process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], env)
}
