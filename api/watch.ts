// Watches one config file, or a directory of them, for changes. A file is watched through its
// directory rather than itself, so that the ways files really get replaced are all seen: editors
// and config tools that write a new file and rename it over the old one, a delete then re-create,
// and Kubernetes ConfigMap volumes, where the file is a symlink into a "..data" directory that is
// swapped by renaming a symlink.
import { existsSync, statSync, watch } from 'node:fs'
import type { FSWatcher } from 'node:fs'
import { basename, dirname, resolve } from 'node:path'

export interface WatchFileOptions {
  /** Quiet time after the last event before onChange runs (default 100 ms). */
  debounceMs?: number
  /** How often to try again while the directory cannot be watched (missing, ...); default 1000 ms. */
  retryMs?: number
  /** Whether the watcher keeps the process alive, as for fs.watch (default true). */
  persistent?: boolean
}

export interface FileWatcher {
  close(): void
}

/**
 * Calls onChange (once per burst of changes, after debounceMs of quiet) whenever the file at path
 * may have changed: written, replaced by a rename, deleted or re-created, or its symlink target
 * swapped. onChange only says "look again"; the caller reloads (and copes with a missing file).
 * Events for other files of the directory are ignored unless the file's identity (inode, size,
 * mtime) changed, which is how a symlink swap shows. If the directory cannot be watched (it does
 * not exist yet, or went away) the watcher retries every retryMs, and calls onChange once it
 * watches again if the file changed meanwhile. An exception thrown by onChange is not caught.
 */
export function watchFile(path: string, onChange: () => void, opts: WatchFileOptions = {}): FileWatcher {
  const file = resolve(path)
  const dir = dirname(file)
  const base = basename(file)
  const debounceMs = opts.debounceMs ?? 100
  const retryMs = opts.retryMs ?? 1000
  const persistent = opts.persistent ?? true

  let watcher: FSWatcher | undefined
  let timer: NodeJS.Timeout | undefined
  let retryTimer: NodeJS.Timeout | undefined
  let closed = false
  // An event named the file itself since the last flush (as opposed to only other entries of the directory).
  let direct = false
  let lastSignature = signature()

  function signature(): string {
    try {
      const s = statSync(file)
      return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`
    } catch {
      return 'missing'
    }
  }

  function onEvent(isDirect: boolean): void {
    if (closed) return
    if (isDirect) {
      direct = true
      clearTimeout(timer)
      timer = setTimeout(flush, debounceMs)
    } else if (timer === undefined) {
      // Other entries of the directory: a busy neighbour must not keep postponing a pending flush.
      timer = setTimeout(flush, debounceMs)
    }
  }

  function flush(): void {
    timer = undefined
    if (closed) return
    const sig = signature()
    const changed = direct || sig !== lastSignature
    direct = false
    lastSignature = sig
    if (sig === 'missing' && !existsSync(dir)) restart()
    if (changed) onChange()
  }

  function start(): boolean {
    try {
      const w = watch(dir, { persistent }, (_event, filename) => {
        // filename can be null on some platforms: then any event may be the file.
        onEvent(filename === null || filename === base)
      })
      w.on('error', () => restart())
      watcher = w
      return true
    } catch {
      return false
    }
  }

  function restart(): void {
    watcher?.close()
    watcher = undefined
    if (closed || retryTimer !== undefined) return
    retryTimer = setTimeout(() => {
      retryTimer = undefined
      if (closed) return
      if (start()) onEvent(false)
      else restart()
    }, retryMs)
  }

  if (!start()) restart()

  return {
    close(): void {
      closed = true
      clearTimeout(timer)
      clearTimeout(retryTimer)
      timer = undefined
      retryTimer = undefined
      watcher?.close()
      watcher = undefined
    },
  }
}

/**
 * Calls onChange (once per burst, after debounceMs of quiet) whenever an entry of the directory
 * changes: a file written, added, removed or renamed, or a ConfigMap "..data" symlink swapped.
 * Every entry counts (the caller re-reads the directory and ignores what it does not read; an
 * unchanged result costs a comparison). If the directory cannot be watched (missing, or removed
 * while watched) the watcher retries every retryMs and calls onChange once it watches again.
 */
export function watchDirectory(path: string, onChange: () => void, opts: WatchFileOptions = {}): FileWatcher {
  const dir = resolve(path)
  const debounceMs = opts.debounceMs ?? 100
  const retryMs = opts.retryMs ?? 1000
  const persistent = opts.persistent ?? true
  let watcher: FSWatcher | undefined
  let timer: NodeJS.Timeout | undefined
  let retryTimer: NodeJS.Timeout | undefined
  let closed = false

  function onEvent(): void {
    if (closed) return
    clearTimeout(timer)
    timer = setTimeout(flush, debounceMs)
  }

  function flush(): void {
    timer = undefined
    if (closed) return
    if (!existsSync(dir)) restart()
    onChange()
  }

  function start(): boolean {
    try {
      const w = watch(dir, { persistent }, () => onEvent())
      w.on('error', () => restart())
      watcher = w
      return true
    } catch {
      return false
    }
  }

  function restart(): void {
    watcher?.close()
    watcher = undefined
    if (closed || retryTimer !== undefined) return
    retryTimer = setTimeout(() => {
      retryTimer = undefined
      if (closed) return
      if (start()) onEvent()
      else restart()
    }, retryMs)
  }

  if (!start()) restart()

  return {
    close(): void {
      closed = true
      clearTimeout(timer)
      clearTimeout(retryTimer)
      timer = undefined
      retryTimer = undefined
      watcher?.close()
      watcher = undefined
    },
  }
}
