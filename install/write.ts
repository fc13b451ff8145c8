// `npm run install-manifests`: (re)writes install/*.yaml from install/manifests.ts.
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { manifests, renderFile } from './manifests.ts'

const dir = dirname(fileURLToPath(import.meta.url))
for (const [name, objs] of manifests()) {
  writeFileSync(join(dir, name), renderFile(objs))
  process.stdout.write(`wrote install/${name}\n`)
}
