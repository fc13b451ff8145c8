// A minimal pod runner for the end-to-end tests: it executes an (injected) Pod spec the way the
// kubelet does, as local processes inside the pod's network namespace:
// - init containers in order; a regular one must exit 0 before the next starts; a native sidecar
//   (an init container with restartPolicy: Always) is started and the next waits for its
//   startupProbe (httpGet) to pass;
// - then the app containers, with their env (values and the downward-API fieldRefs the injector
//   uses: metadata.name, metadata.namespace, spec.serviceAccountName, status.podIP), their
//   securityContext.runAsUser (setpriv), command and args;
// - a container that dies is restarted when its restartPolicy (the sidecar's, else the pod's) is
//   Always; a pod whose restartPolicy is Never or OnFailure completes when its app containers have
//   exited 0: its sidecars then get SIGTERM (native sidecar semantics), and the pod is Succeeded;
// - probes (httpGet only) are evaluated on demand against the pod's IP.
// Images are not pulled: `commands` maps a container's command[0] (or its image) to what to run.
import { spawn, type ChildProcess } from 'node:child_process'

export interface RunnerContainer {
  name: string
  image?: string
  command?: string[]
  args?: string[]
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[]
  restartPolicy?: string
  startupProbe?: { httpGet?: { path?: string; port: number | string } }
  readinessProbe?: { httpGet?: { path?: string; port: number | string } }
  livenessProbe?: { httpGet?: { path?: string; port: number | string } }
  securityContext?: { runAsUser?: number; runAsGroup?: number }
  ports?: { name?: string; containerPort: number }[]
}

export interface RunnerPod {
  metadata: { name: string; namespace: string }
  spec: { containers: RunnerContainer[]; initContainers?: RunnerContainer[]; restartPolicy?: string; serviceAccountName?: string }
}

export interface RunningContainer {
  readonly name: string
  readonly sidecar: boolean
  proc: ChildProcess
  restarts: number
  exitCode: number | null
  output: string
}

export interface RunnerOptions {
  /** the pod's network namespace */
  netns: string
  podIp: string
  /** command[0] or image -> the argv that replaces it */
  commands: Record<string, string[]>
  /** extra env for every container (e.g. PATH) */
  env?: NodeJS.ProcessEnv
  log?: (line: string) => void
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export class PodRunner {
  readonly containers = new Map<string, RunningContainer>()
  phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed' = 'Pending'
  private stopped = false
  readonly pod: RunnerPod
  private readonly o: RunnerOptions

  constructor(pod: RunnerPod, o: RunnerOptions) {
    this.pod = pod
    this.o = o
  }

  /** Run the init containers and start the app containers; resolves when they are all started. */
  async start(): Promise<void> {
    for (const c of this.pod.spec.initContainers ?? []) {
      if (c.restartPolicy === 'Always') {
        this.launch(c, true)
        if (c.startupProbe?.httpGet !== undefined) await this.waitProbe(c.startupProbe.httpGet, 15_000, `${c.name} startupProbe`)
      } else {
        const code = await new Promise<number | null>((resolve) => {
          const rc = this.launch(c, false)
          rc.proc.once('exit', (code) => resolve(code))
        })
        if (code !== 0) {
          this.phase = 'Failed'
          throw new Error(`init container ${c.name} exited ${code}: ${this.containers.get(c.name)?.output.slice(-400)}`)
        }
      }
    }
    for (const c of this.pod.spec.containers) this.launch(c, false)
    this.phase = 'Running'
  }

  /** Evaluate a container's probe (as kubelet: pod IP, the probe's port and path); true: 2xx/3xx. */
  async probe(container: string, kind: 'readinessProbe' | 'livenessProbe' | 'startupProbe'): Promise<boolean> {
    const c = [...(this.pod.spec.initContainers ?? []), ...this.pod.spec.containers].find((x) => x.name === container)
    const g = c?.[kind]?.httpGet
    if (g === undefined) throw new Error(`${container} has no httpGet ${kind}`)
    return this.httpOk(g)
  }

  /** Resolves when the pod is Succeeded or Failed (a Job-like pod), or rejects after ms. */
  async completion(ms: number): Promise<string> {
    for (let i = 0; i < ms / 20 && this.phase !== 'Succeeded' && this.phase !== 'Failed'; i++) await sleep(20)
    return this.phase
  }

  async stop(): Promise<void> {
    this.stopped = true
    const all = [...this.containers.values()]
    for (const c of all) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL')
    await Promise.all(all.map((c) => (c.proc.exitCode !== null || c.proc.signalCode !== null ? null : new Promise((r) => c.proc.once('exit', r)))))
  }

  private launch(c: RunnerContainer, sidecar: boolean): RunningContainer {
    const argv = [...(c.command ?? []), ...(c.args ?? [])]
    const head = argv[0] ?? c.image ?? ''
    const mapped = this.o.commands[head] ?? this.o.commands[c.image ?? '']
    if (mapped === undefined) throw new Error(`no command for container ${c.name} (${head})`)
    const rest = this.o.commands[head] !== undefined ? argv.slice(1) : argv
    const user = c.securityContext?.runAsUser
    const prefix = user === undefined || user === 0 ? [] : ['setpriv', `--reuid=${user}`, `--regid=${c.securityContext?.runAsGroup ?? user}`, '--clear-groups']
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.o.env }
    for (const e of c.env ?? []) {
      const f = e.valueFrom?.fieldRef?.fieldPath
      env[e.name] = f === undefined ? (e.value ?? '')
        : f === 'metadata.name' ? this.pod.metadata.name
        : f === 'metadata.namespace' ? this.pod.metadata.namespace
        : f === 'spec.serviceAccountName' ? (this.pod.spec.serviceAccountName ?? 'default')
        : f === 'status.podIP' ? this.o.podIp
        : ''
    }
    const proc = spawn('ip', ['netns', 'exec', this.o.netns, ...prefix, ...mapped, ...rest], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    const prev = this.containers.get(c.name)
    const rc: RunningContainer = { name: c.name, sidecar, proc, restarts: prev === undefined ? 0 : prev.restarts + 1, exitCode: null, output: prev?.output ?? '' }
    this.containers.set(c.name, rc)
    const keep = (b: Buffer) => { rc.output = (rc.output + b.toString()).slice(-20_000) }
    proc.stdout!.on('data', keep)
    proc.stderr!.on('data', keep)
    proc.once('exit', (code) => {
      rc.exitCode = code
      this.o.log?.(`${this.pod.metadata.name}/${c.name} exited ${code ?? proc.signalCode}`)
      if (this.stopped || this.containers.get(c.name) !== rc) return
      const policy = sidecar ? c.restartPolicy : (this.pod.spec.restartPolicy ?? 'Always')
      if (this.phase === 'Running' || sidecar) {
        if (policy === 'Always' && this.phase !== 'Succeeded') {
          setTimeout(() => { if (!this.stopped) this.launch(c, sidecar) }, 100).unref()
          return
        }
        if (policy === 'OnFailure' && code !== 0) {
          setTimeout(() => { if (!this.stopped) this.launch(c, sidecar) }, 100).unref()
          return
        }
      }
      if (!sidecar) this.maybeComplete()
    })
    return rc
  }

  /** A pod that does not restart its app containers completes when they have all exited. */
  private maybeComplete(): void {
    if (this.phase !== 'Running') return
    const apps = this.pod.spec.containers.map((c) => this.containers.get(c.name))
    if (!apps.every((a) => a !== undefined && a.exitCode !== null)) return
    this.phase = apps.every((a) => a!.exitCode === 0) ? 'Succeeded' : 'Failed'
    // native sidecars end after the app containers (SIGTERM, as kubelet)
    for (const rc of this.containers.values()) if (rc.sidecar && rc.proc.exitCode === null && rc.proc.signalCode === null) rc.proc.kill('SIGTERM')
  }

  private async waitProbe(g: { path?: string; port: number | string }, ms: number, what: string): Promise<void> {
    for (let i = 0; i < ms / 25; i++) {
      if (await this.httpOk(g)) return
      await sleep(25)
    }
    throw new Error(`${what} did not pass within ${ms} ms`)
  }

  private async httpOk(g: { path?: string; port: number | string }): Promise<boolean> {
    const port = typeof g.port === 'number' ? g.port : this.namedPort(g.port)
    const r = await new Promise<number | null>((resolve) => {
      const p = spawn('ip', ['netns', 'exec', this.o.netns, 'curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', `http://${this.o.podIp}:${port}${g.path ?? '/'}`], { stdio: ['ignore', 'pipe', 'ignore'] })
      let out = ''
      p.stdout.on('data', (b: Buffer) => { out += b })
      p.once('exit', () => resolve(Number(out) || null))
    })
    return r !== null && r >= 200 && r < 400
  }

  private namedPort(name: string): number {
    for (const c of [...(this.pod.spec.initContainers ?? []), ...this.pod.spec.containers]) {
      const p = c.ports?.find((x) => x.name === name)
      if (p !== undefined) return p.containerPort
    }
    throw new Error(`no port named ${name}`)
  }
}
