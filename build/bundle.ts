// The sidecar's start path as a few bundled files: `node build/bundle.ts` (run by `npm run build`
// after tsc) bundles dist/cli/weft.js, and what it imports, with esbuild into dist/bundle/ (ESM, one
// chunk per dynamic import: `weft proxy` static mode loads the entry and the proxy's chunk;
// --control-plane and --resources load theirs when used). bin/weft.js runs `weft proxy` from it.
//
// Why: a static sidecar loaded ~240 modules (our ~150 plus yaml's ~90, pino, commander), and
// resolving, reading and linking them was the larger part of its start-up time (see README,
// *Footprint*). Bundled, it reads a few files.
//
// What stays outside the bundle (loaded from node_modules at run time, by the code that needs them):
// native or lazily required packages (koffi; prom-client, required piecewise when metrics are on;
// the validator's Ajv runtime, required by dist/api/bootstrap-validate.cjs), and the packages only
// operator commands use (never on the sidecar's path).
//
// Paths: several modules find files next to themselves through `import.meta.url` (the protos, the
// precompiled validator and schema, createRequire). In a bundle that would be the chunk's URL, so
// each module's `import.meta.url` is rewritten to its own file's URL in dist/, relative to the
// chunk (all chunks are in dist/bundle/), and `import.meta.main` to false (no bundled module is the
// program's entry: bin/weft.js is).
import { build, type Plugin } from 'esbuild'
import { createHash } from 'node:crypto'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { parsedRoot } from '../proxy/xds/wire.ts'
import { PACKAGE } from '../protos/api.ts'
import { configCodecSource } from './config-codec.ts'

const root = path.resolve(import.meta.dirname, '..')
const dist = path.join(root, 'dist')
const outdir = path.join(dist, 'bundle')

/** Loaded at run time from node_modules, never bundled. */
export const EXTERNAL = [
  'koffi',
  'prom-client',
  'ajv',
  'ajv/*',
  'typebox',
  'typebox/*',
  '@kubernetes/client-node',
  'ioredis',
  '@peculiar/x509',
  'reflect-metadata',
  'undici',
  'zipkin',
  'zipkin-transport-http',
]

/**
 * Each module's `import.meta.url` as its own file's URL in dist/ (relative to `base`, the URL of the
 * output file: `import.meta.url` in the ES module chunks, `__weftUrl` from the banner in the
 * CommonJS bundle) and `import.meta.main` as false.
 */
function ownUrls(from: string, base: string): Plugin {
  return {
    name: 'weft-own-urls',
    setup(b) {
      b.onLoad({ filter: /\.js$/ }, async (args) => {
        if (!args.path.startsWith(dist + path.sep)) return undefined
        let text = await readFile(args.path, 'utf8')
        if (text.includes('import.meta')) {
          const rel = path.relative(from, args.path).split(path.sep).join('/')
          text = text.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, ${base}).href`).replaceAll('import.meta.main', 'false')
        }
        for (const [file, [from, to]] of Object.entries(base === 'import.meta.url' ? {} : SIDECAR_REPLACE)) {
          if (args.path !== path.join(dist, file)) continue
          if (!text.includes(from)) throw new Error(`bundle: ${file} no longer contains ${JSON.stringify(from)} (see SIDECAR_REPLACE)`)
          text = text.replace(from, to)
        }
        return { contents: text, loader: 'js' }
      })
    },
  }
}

/**
 * node:http2, node:tls, node:https and node:crypto, as the proxy's modules import them, loaded on
 * first use: a static sidecar without mesh TLS, HTTP/2 upstreams or HTTPS probes never loads the
 * first three (they cost ~16 MB RSS and a good part of the start-up time: measured with
 * process.moduleLoadList and RSS), and node:crypto (~3 MB, 10-17 ms of CPU: OpenSSL's setup and
 * ~20 modules) only by a feature that needs it (request ids come from OWN_EXPORTS below). Only
 * for importers under dist/proxy/ (a control plane, or gRPC in --control-plane mode, loads the
 * real modules as before), except the modules in EAGER_IMPORTERS, which use the module as they
 * load. Each function export becomes a function that calls the real one (also with
 * `new`); http2's `constants` is a copy made at build time by the same Node (numbers of the HTTP/2
 * protocol and nghttp2). Other values (tls.rootCertificates, http2.sensitiveHeaders,
 * crypto.webcrypto, …) are not offered: importing one from proxy/ fails the build with "No matching
 * export": add it here (loaded at once) or take it where it is used.
 */
export const LAZY_BUILTINS = ['node:http2', 'node:tls', 'node:https', 'node:crypto']

/** Modules (under dist/proxy/) that use a lazy builtin as they load: they import the real one. */
const EAGER_IMPORTERS = [path.join('proxy', 'identity', 'identity.js')]

/**
 * Exports of a lazy builtin that the bundle takes from Weft's own module instead (absolute path of
 * its compiled file): node:crypto's randomUUID, for request ids, is proxy/net/random-uuid.ts, so a
 * sidecar serving plain HTTP never loads node:crypto (see that file).
 */
export const OWN_EXPORTS: Record<string, Record<string, string>> = {
  'node:crypto': { randomUUID: path.join(dist, 'proxy', 'net', 'random-uuid.js') },
}

export function lazyShim(name: string, own: Record<string, string> = OWN_EXPORTS[name] ?? {}): string {
  const real = process.getBuiltinModule(name) as Record<string, unknown>
  const lines = [`let real; const load = () => (real ??= process.getBuiltinModule(${JSON.stringify(name)}));`]
  for (const [k, file] of Object.entries(own)) lines.push(`export { ${k} } from ${JSON.stringify(file)};`)
  for (const [k, v] of Object.entries(real)) {
    if (Object.hasOwn(own, k)) continue
    if (typeof v === 'function') {
      lines.push(`export function ${k}(...a) { return new.target === undefined ? load().${k}(...a) : Reflect.construct(load().${k}, a) }`)
    } else if (name === 'node:http2' && k === 'constants') {
      lines.push(`export const constants = Object.freeze(${JSON.stringify(v)});`)
    }
  }
  return lines.join('\n') + '\n'
}

const lazyBuiltins: Plugin = {
  name: 'weft-lazy-builtins',
  setup(b) {
    const proxyDir = path.join(dist, 'proxy') + path.sep
    b.onResolve({ filter: /^node:(http2|tls|https|crypto)$/ }, (args) => {
      if (!args.importer.startsWith(proxyDir) || args.kind !== 'import-statement') return undefined
      if (EAGER_IMPORTERS.some((d) => args.importer.startsWith(path.join(dist, d)))) return undefined
      return { path: args.path, namespace: 'weft-lazy' }
    })
    b.onLoad({ filter: /.*/, namespace: 'weft-lazy' }, (args) => ({ contents: lazyShim(args.path), loader: 'js', resolveDir: dist }))
  },
}

/**
 * pino's modules require node:assert and node:worker_threads as they load (sonic-boom and
 * thread-stream for an assert() in rarely taken paths and for transports, which Weft does not use;
 * pino's tools for isMainThread): ~1 MB and 2-3 ms of start-up for modules a sidecar never calls.
 * In the bundle they get these stand-ins: assert(...) and new Worker(...) load the real module on
 * first use; isMainThread is true, because the bundle runs only as the program bin/weft.js starts,
 * never inside a worker thread (in pino it only decides whether a log stream is flushed at exit).
 */
export const CJS_STANDINS: Record<string, string> = {
  assert: 'module.exports = function assert(...a) { return process.getBuiltinModule("node:assert")(...a) }\n',
  worker_threads: [
    'module.exports = {',
    '  isMainThread: true,',
    '  Worker: function Worker(...a) { return Reflect.construct(process.getBuiltinModule("node:worker_threads").Worker, a) },',
    '}',
    '',
  ].join('\n'),
}
const STANDIN_IMPORTERS = ['pino', 'sonic-boom', 'thread-stream'].map((p) => path.join(root, 'node_modules', p) + path.sep)

const cjsStandins: Plugin = {
  name: 'weft-cjs-standins',
  setup(b) {
    b.onResolve({ filter: /^(node:)?(assert|worker_threads)$/ }, (args) => {
      if (args.kind !== 'require-call' || !STANDIN_IMPORTERS.some((d) => args.importer.startsWith(d))) return undefined
      return { path: args.path.replace(/^node:/, ''), namespace: 'weft-standin' }
    })
    b.onLoad({ filter: /.*/, namespace: 'weft-standin' }, (args) => ({ contents: CJS_STANDINS[args.path], loader: 'js' }))
  },
}

export async function bundle(): Promise<void> {
  await rm(outdir, { recursive: true, force: true })
  // the --control-plane sidecar's message code (see proxy/xds/wire.ts), over the sources' stub
  // in dist/ (build/config-codec.ts)
  await writeFile(path.join(dist, 'proxy', 'xds', 'config-codec.js'), configCodecSource(parsedRoot(), `${PACKAGE}.ConfigDiscovery`))
  const r = await build({
    entryPoints: { weft: path.join(dist, 'cli', 'weft.js') },
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node24',
    chunkNames: 'chunk-[hash]',
    external: EXTERNAL,
    // CommonJS packages in an ES module bundle call require(): give them one.
    banner: { js: "import { createRequire as __weftRequire } from 'node:module';\nconst require = __weftRequire(import.meta.url);" },
    plugins: [lazyBuiltins, cjsStandins, ownUrls(outdir, 'import.meta.url')],
    logLevel: 'warning',
    // legal comments of the bundled packages stay, at the end of each file
    legalComments: 'eof',
    metafile: true,
  })
  if (r.errors.length > 0) throw new Error(`bundle: ${r.errors.length} errors`)
  await bundleSidecars()
}

/**
 * The sidecar as one CommonJS file per mode (entry cli/proxy-main.ts): `dist/sidecar/weft-proxy.cjs`
 * for static mode, `weft proxy --config FILE` without --control-plane or --resources, the sidecar's
 * usual command line; `dist/sidecar/weft-proxy-cp.cjs` for `weft proxy --control-plane ADDR`.
 * bin/weft.js runs the one for its command line with node:vm and a code cache made after a start
 * (sidecarCacheFile, written by build/warm-cache.ts: a static start, and a start against a local
 * control plane), so the functions a start runs are read as bytecode instead of being
 * compiled on their first call (Node's compile cache holds only what V8 compiles as a module
 * loads), and no ES module graph is resolved and linked. Each file bundles its mode's main module
 * (SIDECAR_FILES: proxy/main.ts, or proxy/xds/sidecar.ts); the other dynamic imports (the other
 * mode, --resources, mesh identity, tracing, the global rate limit's gRPC) are not bundled: they
 * load their modules from dist/ when used (the files are one level below dist/, as dist/cli/ is, so
 * the relative paths stay right). Each file is one function expression (CommonJS's module wrapper)
 * after a first line `// weft-proxy <hash of the rest>`: the cache's file name carries the hash,
 * since V8 only checks a code cache against the source's length.
 */
export const SIDECAR_FILE = path.join(dist, 'sidecar', 'weft-proxy.cjs')
export const CP_SIDECAR_FILE = path.join(dist, 'sidecar', 'weft-proxy-cp.cjs')
/** The code cache of a sidecar file (`file` ends in .cjs; `hash` from its first line). */
export const sidecarCacheFile = (hash: string, file: string = SIDECAR_FILE): string => file.replace(/\.cjs$/, `-${hash}.v8cache`)

/** Each sidecar file and the main module it bundles (its dynamic import from cli/proxy-command.ts). */
const SIDECAR_FILES: [file: string, main: string][] = [
  [SIDECAR_FILE, path.join(dist, 'proxy', 'main.js')],
  [CP_SIDECAR_FILE, path.join(dist, 'proxy', 'xds', 'sidecar.js')],
]

/** Edits of dist/ files for the CommonJS bundle: the top-level await only source runs need. */
const SIDECAR_REPLACE: Record<string, [string, string]> = {
  // the bundle always has the build's validator files next to api/validator.js
  [path.join('api', 'validator.js')]: ["PREBUILT ? null : await import('./schema.js')", 'null'],
}

/** Dynamic imports stay imports of dist/ files (their specifiers collected in `external`), except of `bundled`. */
function sidecarImports(bundled: string, external: Set<string>): Plugin {
  return {
    name: 'weft-sidecar-imports',
    setup(b) {
      b.onResolve({ filter: /.*/ }, (args) => {
        if (args.kind !== 'dynamic-import') return undefined
        let spec = args.path
        if (spec.startsWith('.')) {
          const abs = path.resolve(args.resolveDir, spec)
          if (abs === bundled) return undefined
          spec = './' + path.relative(path.dirname(SIDECAR_FILE), abs).split(path.sep).join('/')
        }
        external.add(spec)
        return { path: spec, external: true }
      })
    },
  }
}

async function bundleSidecars(): Promise<void> {
  await rm(path.dirname(SIDECAR_FILE), { recursive: true, force: true })
  for (const [file, main] of SIDECAR_FILES) await bundleSidecar(file, main)
}

async function bundleSidecar(file: string, main: string): Promise<void> {
  const outdir = path.dirname(file)
  const externalImports = new Set<string>()
  const r = await build({
    entryPoints: [path.join(dist, 'cli', 'proxy-main.js')],
    outfile: file,
    bundle: true,
    format: 'cjs',
    charset: 'ascii',
    minifyWhitespace: true,
    platform: 'node',
    target: 'node24',
    external: EXTERNAL,
    plugins: [sidecarImports(main, externalImports), lazyBuiltins, cjsStandins, ownUrls(outdir, '__weftUrl')],
    logLevel: 'warning',
    legalComments: 'eof',
    write: false,
  })
  if (r.errors.length > 0) throw new Error(`bundle (${path.basename(file)}): ${r.errors.length} errors`)
  // One function expression, CommonJS's module wrapper, that node:vm compiles as is; strict as the
  // ES modules it is made of (a banner would come before esbuild's "use strict").
  // A sixth parameter, __weftImport: the dynamic imports left in the file (see sidecarImports) call
  // it, since a script compiled by node:vm has no import() of its own without an experimental
  // option; bin/weft.js passes one that resolves them against this file.
  const prologue = '(function (exports, require, module, __filename, __dirname, __weftImport) {"use strict";const __weftUrl = require("node:url").pathToFileURL(__filename).href;'
  let text = r.outputFiles[0].text
  for (const spec of externalImports) text = text.replaceAll(`import(${JSON.stringify(spec)})`, `__weftImport(${JSON.stringify(spec)})`)
  if (/\bimport\(/.test(text)) throw new Error(`bundle: an import() left in ${file}: ${/.{40}\bimport\(.{40}/.exec(text)?.[0]}`)
  const body = `${prologue}\n${text}})\n`
  // ASCII (charset, and no comments but the legal ones, which have none): bin/weft.js reads it as latin1
  if (/[^\x00-\x7f]/.test(body)) throw new Error(`bundle: ${file} would not be ASCII`)
  const hash = createHash('sha256').update(body).digest('hex').slice(0, 16)
  await mkdir(outdir, { recursive: true })
  await writeFile(file, `// weft-proxy ${hash}\n${body}`)
}

if (import.meta.main) await bundle()
