// `npm run protos`: regenerate the TypeScript types of protos/ into protos/generated/ (committed).
// The generator emits type-only files (interfaces and `import type`), which Node's type stripping
// runs as they are; the options here must match the loader's in ./api.ts (camelCase fields,
// 64-bit integers as strings, defaults filled in, oneof names). test/xds-protos.test.ts
// regenerates into a temp dir and fails when protos/generated/ is stale.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const PROTOS_DIR = dirname(fileURLToPath(import.meta.url))
export const PROTO_FILES = ['weft/config/v1alpha1/config.proto']
const GENERATOR = join(PROTOS_DIR, '..', 'node_modules', '.bin', 'proto-loader-gen-types')

/** Generate into outDir (emptied first). */
export function generate(outDir: string): void {
  rmSync(outDir, { recursive: true, force: true })
  execFileSync(
    GENERATOR,
    [
      '--grpcLib', '@grpc/grpc-js',
      '--importFileExtension', '.ts',
      '--longs', 'String',
      '--enums', 'String',
      '--defaults',
      '--oneofs',
      '--includeComments',
      '-I', PROTOS_DIR,
      '-O', outDir,
      ...PROTO_FILES,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  )
  // Non-erasable syntax would not run under type stripping: fail loudly rather than emit it.
  // The generator names the .proto by its absolute path: made relative to the repository, so the
  // output is the same in every checkout (CI clones elsewhere).
  const root = dirname(PROTOS_DIR) + '/'
  for (const file of listFiles(outDir)) {
    let text = readFileSync(file, 'utf8')
    text = text.replaceAll(`// Original file: ${root}`, '// Original file: ')
    writeFileSync(file, text)
    if (/^\s*(export\s+)?(const\s+)?enum\s|^\s*(export\s+)?namespace\s/m.test(text)) {
      throw new Error(`${file}: generated code is not erasable TypeScript (enum or namespace)`)
    }
  }
}

/** Every file under dir, recursively, sorted. */
export function listFiles(dir: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...listFiles(p))
    else out.push(p)
  }
  return out.sort()
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // Generate next to the target and swap, so a failed run leaves the committed files alone.
  const tmp = mkdtempSync(join(tmpdir(), 'weft-protos-'))
  const staged = join(tmp, 'generated')
  generate(staged)
  const target = join(PROTOS_DIR, 'generated')
  rmSync(target, { recursive: true, force: true })
  try {
    renameSync(staged, target)
  } catch {
    // another file system: copy instead
    execFileSync('cp', ['-r', staged, target])
  }
  rmSync(tmp, { recursive: true, force: true })
  process.stdout.write(`protos: generated ${listFiles(target).length} files into ${target}\n`)
}
