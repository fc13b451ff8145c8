// bin/weft.js runs the build (dist/) when it is current and the TypeScript when a source is newer
// than the build (with a warning), when WEFT_FROM_SOURCE=1, or when there is no build. Checked on a
// copy of bin/weft.js in a temporary tree whose dist/cli/weft.js and cli/weft.ts say which ran.
import t from 'tap'
import { execFile } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ROOT } from './helpers/sidecar.ts'

function run(root: string, env: NodeJS.ProcessEnv = {}): Promise<{ out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const e = { ...process.env, ...env }
    if (!('WEFT_FROM_SOURCE' in env)) delete e.WEFT_FROM_SOURCE
    execFile(process.execPath, [join(root, 'bin', 'weft.js'), 'version'], { env: e, timeout: 20_000 }, (error, out, err) => {
      if (error) reject(new Error(`${error.message}\n${err}`))
      else resolve({ out: out.trim(), err })
    })
  })
}

t.test('dist/ when current, the sources when newer or asked for', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'weft-bin-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  for (const d of ['bin', 'cli', 'dist/cli', 'proxy']) mkdirSync(join(root, d), { recursive: true })
  writeFileSync(join(root, 'package.json'), '{ "type": "module" }\n')
  copyFileSync(join(ROOT, 'bin', 'weft.js'), join(root, 'bin', 'weft.js'))
  writeFileSync(join(root, 'cli', 'weft.ts'), "const from: string = 'sources'\nconsole.log(from)\n")
  writeFileSync(join(root, 'proxy', 'x.ts'), 'export {}\n')
  writeFileSync(join(root, 'dist', 'cli', 'weft.js'), "console.log('dist')\n")
  const past = new Date(Date.now() - 60_000)
  for (const f of ['cli/weft.ts', 'proxy/x.ts']) utimesSync(join(root, f), past, past)
  writeFileSync(join(root, 'dist', 'BUILD'), 'now\n')

  t.equal((await run(root)).out, 'dist', 'a current build runs')
  t.equal((await run(root, { WEFT_FROM_SOURCE: '1' })).out, 'sources', 'WEFT_FROM_SOURCE=1 runs the sources')

  utimesSync(join(root, 'proxy', 'x.ts'), new Date(), new Date(Date.now() + 5_000))
  const stale = await run(root)
  t.equal(stale.out, 'sources', 'a source newer than the build: the sources run')
  t.match(stale.err, /proxy\/x\.ts is newer than dist\/ \(npm run build\)/, 'and it says why')

  rmSync(join(root, 'cli', 'weft.ts'))
  rmSync(join(root, 'proxy'), { recursive: true })
  t.equal((await run(root)).out, 'dist', 'no sources (the installed package): dist runs')

  writeFileSync(join(root, 'cli', 'weft.ts'), "console.log('sources')\n")
  rmSync(join(root, 'dist', 'BUILD'))
  t.equal((await run(root)).out, 'sources', 'no finished build (no dist/BUILD): the sources run')
})
