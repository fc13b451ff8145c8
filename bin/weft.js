#!/usr/bin/env node
// Entry point of the `weft` command. Weft is TypeScript run by Node's type stripping (Node >= 24).
// When started by an older system Node, re-run with the Node pinned in the project's node_modules
// (the `node` dependency) as a child process. This process then stands in for it, the way a
// container runtime or a supervisor sees it: SIGTERM, SIGINT and SIGHUP are passed on to the child
// (which drains), and this process ends the way the child ended (its exit code, or the same
// signal). If this process dies without passing anything on (SIGKILL), the child sees its IPC
// channel close and drains as on SIGTERM, so it never outlives its parent.
// node:child_process is imported only where it is used (an older Node): a sidecar does not load it.
import { existsSync, readdirSync, statSync } from 'node:fs'
import module, { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const major = Number(process.versions.node.split('.')[0])
if (major >= 24) {
  const wrapped = process.env.WEFT_WRAPPED === '1'
  delete process.env.WEFT_WRAPPED // not for processes weft starts
  if (wrapped && process.channel !== undefined) {
    // Started by the wrapper below: its death is our SIGTERM. The channel must not keep us alive.
    process.channel.unref()
    process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'))
  }
  // Weft runs as compiled JavaScript (dist/, built by `npm install`'s prepare and `npm pack`'s
  // prepack): Node does not strip types under node_modules, and stripping costs start-up time and
  // ~20 MB. A checkout whose sources are newer than the build runs the TypeScript (see useCompiled).
  const compiled = new URL('../dist/cli/weft.js', import.meta.url)
  // V8's code cache of the compiled JavaScript, kept in dist/compile-cache (filled by the build,
  // see build/warm-cache.ts): a start reads the bytecode instead of compiling it.
  if (process.env.WEFT_COMPILE_CACHE !== '0' && process.env.NODE_COMPILE_CACHE === undefined) {
    module.enableCompileCache?.({ directory: fileURLToPath(new URL('../dist/compile-cache', import.meta.url)), portable: true })
  }
  // `weft proxy` runs from the bundle of the same code (build/bundle.ts): a few files, not ~240 modules;
  // a static or --control-plane sidecar from its mode's single file (runSidecarFile).
  const bundled = new URL('../dist/bundle/weft.js', import.meta.url)
  const useBundle = process.argv[2] === 'proxy' && process.env.WEFT_NO_BUNDLE !== '1' && existsSync(fileURLToPath(bundled))
  const sidecar = useBundle ? sidecarFile(process.argv.slice(3)) : null
  if (!useCompiled(compiled)) await import('../cli/weft.ts')
  else if (sidecar !== null && existsSync(sidecar)) await runSidecarFile(sidecar)
  else await import(useBundle ? bundled.href : compiled.href)
} else {
  const pinned = pinnedNode()
  if (pinned === null) {
    const root = dirname(dirname(fileURLToPath(import.meta.url)))
    process.stderr.write(`weft needs Node >= 24 (found ${process.version}); run 'npm install' in ${root}\n`)
    process.exit(1)
  }
  const { spawn } = await import('node:child_process')
  const env = { ...process.env, WEFT_WRAPPED: '1' }
  const child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: process.argv[2] === 'control-plane' ? await controlPlaneEnv(env) : env,
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

/**
 * The single file (build/bundle.ts) for these `weft proxy` arguments: static mode's (neither
 * --control-plane nor --resources), --control-plane mode's, or null (--resources: the bundle).
 */
function sidecarFile(args) {
  if (args.some((a) => a.startsWith('--resources') || a.startsWith('-r'))) return null
  const name = args.some((a) => a.startsWith('--control-plane')) ? 'weft-proxy-cp.cjs' : 'weft-proxy.cjs'
  return fileURLToPath(new URL(`../dist/sidecar/${name}`, import.meta.url))
}

/**
 * Runs a sidecar's single CommonJS file (build/bundle.ts) as Node would require it, but
 * compiled through node:vm with the code cache the build made after a start (build/warm-cache.ts
 * sets WEFT_WRITE_SIDECAR_CACHE=1): that cache also holds the functions compiled while the sidecar
 * started, which Node's compile cache cannot (it is made as a module is compiled, before any
 * function runs). The first line names the cache (a hash of the rest: V8 itself checks only the
 * source's length, the V8 version and flags); a rejected or missing cache only costs the compile.
 */
async function runSidecarFile(file) {
  const fs = await import('node:fs')
  const vm = await import('node:vm')
  // in a function of its own: the source text and the cache's buffer are garbage once it returns
  await loadSidecarFile(file, fs, vm)(process.argv)
}

function loadSidecarFile(file, fs, vm) {
  const { source, cacheFile, cachedData } = readSidecarFile(file, fs)
  // the file is a CommonJS module wrapper with a sixth parameter, its import() (see build/bundle.ts)
  const script = new vm.Script(source, { filename: file, cachedData })
  if (process.env.WEFT_WRITE_SIDECAR_CACHE === '1' && cacheFile !== null) {
    delete process.env.WEFT_WRITE_SIDECAR_CACHE
    process.once('exit', () => fs.writeFileSync(cacheFile, script.createCachedData(), { mode: 0o644 }))
  }
  const mod = { exports: {} }
  script.runInThisContext()(mod.exports, createRequire(file), mod, file, dirname(file), importer(pathToFileURL(file)))
  return mod.exports.main
}

/**
 * The sidecar file's source (ASCII, build/bundle.ts: a one-byte string, no UTF-8 decoding) and its
 * code cache (named after the hash on the file's first line; none when WEFT_COMPILE_CACHE=0 or
 * missing), read through one buffer: the file, made into the string, then the cache over it.
 * Both are ~1 MB, and every page a start touches for the first time costs a page fault (~10 µs
 * each on the bench machine, a Firecracker VM): a second buffer was ~2.5 ms of the start.
 */
function readSidecarFile(file, { openSync, fstatSync, readSync, closeSync }) {
  const readFully = (fd, buf, n) => {
    for (let p = 0; p < n; ) {
      const k = readSync(fd, buf, p, n - p, p)
      if (k === 0) throw new Error(`${file}: short read`)
      p += k
    }
  }
  const fd = openSync(file, 'r')
  let cfd = -1
  try {
    const size = fstatSync(fd).size
    const head = Buffer.alloc(64)
    const hash = /^\/\/ weft-proxy ([0-9a-f]+)\n/.exec(head.latin1Slice(0, readSync(fd, head, 0, 64, 0)))?.[1]
    const cacheFile = hash === undefined ? null : file.replace(/\.cjs$/, `-${hash}.v8cache`)
    let cacheSize = 0
    if (cacheFile !== null && process.env.WEFT_COMPILE_CACHE !== '0') {
      try {
        cfd = openSync(cacheFile, 'r')
        cacheSize = fstatSync(cfd).size
      } catch {
        // none: compiled from source
      }
    }
    const buf = Buffer.allocUnsafeSlow(Math.max(size, cacheSize))
    readFully(fd, buf, size)
    const source = buf.latin1Slice(0, size)
    let cachedData
    if (cfd !== -1) {
      try {
        readFully(cfd, buf, cacheSize)
        cachedData = buf.subarray(0, cacheSize)
      } catch {
        // unreadable: compiled from source
      }
    }
    return { source, cacheFile, cachedData }
  } finally {
    closeSync(fd)
    if (cfd !== -1) closeSync(cfd)
  }
}

/** import() for the sidecar file's dynamic imports: relative ones from the file's place in dist/. */
function importer(base) {
  return (spec) => import(spec.startsWith('.') ? new URL(spec, base).href : spec)
}

/**
 * dist/ when it is there and current. In a checkout (the .ts sources are present) a source file
 * changed after the last `npm run build` means dist/ is stale: then the TypeScript runs, with a
 * warning. WEFT_FROM_SOURCE=1 always runs the TypeScript. (A few ms for the ~250 sources.)
 */
function useCompiled(compiled) {
  if (process.env.WEFT_FROM_SOURCE === '1') return false
  const stamp = new URL('../dist/BUILD', import.meta.url)
  if (!existsSync(fileURLToPath(compiled)) || !existsSync(fileURLToPath(stamp))) return false
  const root = dirname(dirname(fileURLToPath(import.meta.url)))
  if (!existsSync(join(root, 'cli', 'weft.ts'))) return true // the installed package: no sources
  const built = statSync(fileURLToPath(stamp)).mtimeMs
  for (const dir of ['api', 'cli', 'proxy', 'control-plane', 'protos', 'install']) {
    const file = newerSource(`${root}/${dir}`, built)
    if (file !== null) {
      process.stderr.write(`weft: ${file} is newer than dist/ (npm run build); running the TypeScript sources\n`)
      return false
    }
  }
  return true
}

/**
 * The first .ts or .proto file under dir modified after `built`, or null. Paths are joined with
 * '/', not path.join: readdirSync's recursive mode and path.join normalize every path, and for the
 * ~250 sources that loop got hot enough for V8 to optimize path.normalize on each start (a 50 ms
 * TurboFan compile on a background thread, and ~5 MB of the optimizing compiler's code paged in).
 */
function newerSource(dir, built) {
  let entries
  try {
    entries = readdirSync(dir, { withFileTypes: true })
  } catch {
    return null
  }
  for (const e of entries) {
    const p = `${dir}/${e.name}`
    if (e.isDirectory()) {
      const f = newerSource(p, built)
      if (f !== null) return f
    } else if (e.isFile() && (e.name.endsWith('.ts') || e.name.endsWith('.proto')) && statSync(p).mtimeMs > built) {
      return p
    }
  }
  return null
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

/**
 * The control plane's glibc settings (control-plane/runtime.ts) added to `env`: glibc reads them when
 * the process starts, and the child cannot re-execute itself with them without losing its channel
 * to this process. From the compiled module (this Node cannot load the TypeScript); without a
 * build the child runs without them and says so.
 */
async function controlPlaneEnv(env) {
  try {
    const runtime = await import('../dist/control-plane/runtime.js')
    return runtime.controlPlaneEnv(env)
  } catch {
    return env
  }
}
