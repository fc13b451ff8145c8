// The local source (the embedded mode): Service, EndpointSlice, HTTPRoute and TrafficPolicy files
// of a directory, read and checked with `weft validate`'s loader, watched for changes. A bad edit
// is logged with file:line:column and field path, and nothing is handed on: the last good
// resources stay published.
import type { Logger } from 'pino'
import { formatConfigError } from '../../api/errors.ts'
import { watchDirectory, type FileWatcher } from '../../api/watch.ts'
import { loadResources } from '../resources/validate.ts'
import { resourcesOf, type Resources } from '../translate/translate.ts'

export interface LocalSourceOptions {
  /** the resource directory (or one file) */
  path: string
  log: Logger
  /** called with every good state: once from load(), then after each good edit */
  onChange(r: Resources): void
  debounceMs?: number
}

export class LocalSource {
  private watcher: FileWatcher | null = null
  private readonly o: LocalSourceOptions
  /** good loads and rejected loads, for the admin API and tests */
  readonly counts = { loads: 0, rejected: 0 }

  constructor(o: LocalSourceOptions) {
    this.o = o
  }

  /** Read and check the files; false (errors logged) keeps the last good resources. */
  async load(): Promise<boolean> {
    const r = await loadResources([this.o.path])
    if (!r.ok) {
      this.counts.rejected++
      for (const e of r.errors) this.o.log.error({ code: e.code }, formatConfigError(e))
      this.o.log.error(
        { dir: this.o.path, errors: r.errors.length },
        this.counts.loads === 0 ? 'resources rejected; nothing published yet' : 'resources rejected; the last good snapshots stay published',
      )
      return false
    }
    if (r.resources.bootstraps.length > 0) {
      this.o.log.warn({ files: r.resources.bootstraps.map((b) => b.file) }, 'proxy bootstraps among the resources are ignored (each proxy has its own --config)')
    }
    this.counts.loads++
    this.o.onChange(resourcesOf(r.resources))
    return true
  }

  /** Watch the directory; each change is loaded again. */
  watch(): void {
    this.watcher = watchDirectory(this.o.path, () => void this.load(), { debounceMs: this.o.debounceMs ?? 100, persistent: false })
  }

  close(): void {
    this.watcher?.close()
  }
}
