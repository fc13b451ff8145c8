// `weft control-plane`'s options (commander). The implementation (./control-plane.ts, with the
// Kubernetes client and the gRPC server) is imported when the command runs.
import type { Command } from 'commander'
import type { KubeConfigOption } from '../control-plane/sources/kube-api.ts'

import { DEFAULT_CP_ADMIN, DEFAULT_XDS_ADDRESS } from '../control-plane/xds/defaults.ts'

export function registerControlPlane(program: Command): void {
  program
    .command('control-plane')
    .description('run the control plane: serve proxies their config over gRPC, from resource files (--local) or Kubernetes (--kubernetes)')
    .option('--listen <host:port>', 'gRPC address for proxies', DEFAULT_XDS_ADDRESS)
    .option('--admin <host:port>', 'admin HTTP address (/debug/proxies, /debug/nacks, /debug/snapshots, /debug/source, /metrics)', DEFAULT_CP_ADMIN)
    .option('--local <dir>', 'local mode: Service, EndpointSlice, HTTPRoute, TrafficPolicy, PeerAuthentication and AuthorizationPolicy files (watched)')
    .option('--kubernetes [where]', 'watch the Kubernetes API: "cluster" (in-cluster service account) or "default" (kubeconfig from $KUBECONFIG or ~/.kube/config, else in-cluster)')
    .option('--kubeconfig <file>', 'with --kubernetes: this kubeconfig file (default $KUBECONFIG, then ~/.kube/config)')
    .option('--context <name>', 'with --kubernetes: this kubeconfig context (default its current-context)')
    .option('--outbound-port <port>', 'port of the "outbound" listener sent to proxies (a proxy bootstrap listener "outbound" overrides it)', '15001')
    .option('--webhook-listen <host:port>', 'serve the sidecar injection webhook (HTTPS, POST /inject) on this address, with a certificate made at start')
    .option('--webhook-service <name>', 'the control plane\'s Service: DNS names of the webhook certificate, address proxies are given (<name>.<namespace>.svc:15010)', 'weft-control-plane')
    .option('--namespace <ns>', 'the control plane\'s namespace (never injected); default $POD_NAMESPACE or weft-system')
    .option('--proxy-image <image>', 'image of the injected weft-init and weft-proxy containers')
    .option('--ca-listen <host:port>', 'serve the mesh certificate service (SVIDs for proxies; istiod uses 15012) on this address')
    .option('--trust-domain <domain>', 'with --ca-listen: the SPIFFE trust domain', 'cluster.local')
    .option('--ca-dir <dir>', 'with --ca-listen, local mode: where the mesh root is kept (made at first start)')
    .option('--ca-tokens <file>', 'with --ca-listen, local mode: the workloads\' tokens (tokens: [{token, namespace, serviceAccount}])')
    .option('--ca-cert <file>', 'with --ca-listen: a plugged-in signing certificate (root or intermediate) instead of a generated root')
    .option('--ca-key <file>', 'with --ca-cert: its PKCS#8 ECDSA P-256 key')
    .option('--ca-chain <file>', 'with --ca-cert: the certificates above it, up to the root')
    .option('--ca-tls', 'with --ca-listen: serve TLS (its certificate signed by the mesh root, which injected pods get); the default in Kubernetes mode')
    .option('--no-ca-tls', 'with --ca-listen: plain text (the default in local mode)')
    .option('--root-namespace <ns>', 'the namespace whose PeerAuthentication and AuthorizationPolicy apply mesh-wide (Istio\'s rootNamespace); default the control plane\'s namespace')
    .option('--no-auto-mtls', 'with --ca-listen: do not turn on mutual TLS by itself for Services whose endpoints all have sidecars (Kubernetes mode)')
    .option('--push-throttle <n>', 'complete snapshots written to proxies at a time (istiod\'s PILOT_PUSH_THROTTLE); others wait their turn; 0: no limit but the 64 MB send budget', '2')
    .option('--log-level <level>', 'log level (trace, debug, info, warn, error); default $WEFT_LOG_LEVEL or info')
    .action(async (opts: { listen: string; admin: string; local?: string; kubernetes?: string | boolean; kubeconfig?: string; context?: string; outboundPort: string; pushThrottle: string; logLevel?: string; webhookListen?: string; webhookService: string; namespace?: string; proxyImage?: string; caListen?: string; trustDomain: string; caDir?: string; caTokens?: string; caCert?: string; caKey?: string; caChain?: string; rootNamespace?: string; autoMtls: boolean; caTls?: boolean }) => {
      if (opts.logLevel !== undefined) process.env.WEFT_LOG_LEVEL = opts.logLevel
      const port = Number(opts.outboundPort)
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        process.stderr.write(`weft: --outbound-port: expected a port number, got "${opts.outboundPort}"\n`)
        process.exitCode = 2
        return
      }
      const pushThrottle = Number(opts.pushThrottle)
      if (!Number.isInteger(pushThrottle) || pushThrottle < 0) {
        process.stderr.write(`weft: --push-throttle: expected a whole number (0: no limit), got "${opts.pushThrottle}"\n`)
        process.exitCode = 2
        return
      }
      let kubernetes: KubeConfigOption | undefined
      if (opts.kubernetes !== undefined) {
        const k = opts.kubernetes === true ? 'default' : opts.kubernetes
        if (k !== 'default' && k !== 'cluster') {
          process.stderr.write(`weft: --kubernetes: expected "cluster" or "default", got "${k}"\n`)
          process.exitCode = 2
          return
        }
        kubernetes = k === 'default' && (opts.kubeconfig !== undefined || opts.context !== undefined) ? { kubeconfig: opts.kubeconfig, context: opts.context } : k
      } else if (opts.kubeconfig !== undefined || opts.context !== undefined) {
        process.stderr.write('weft: --kubeconfig and --context go with --kubernetes\n')
        process.exitCode = 2
        return
      }
      // glibc's and V8's settings of the control plane (control-plane/runtime.ts): re-executes this process once if it lacks them
      const { runWithControlPlaneSettings } = await import('../control-plane/runtime.ts')
      const unset = runWithControlPlaneSettings()
      if (unset !== null) process.stderr.write(`weft: the control plane runs without its memory settings (${unset}); see README "Memory with many proxies"\n`)
      const { runControlPlane } = await import('./control-plane.ts')
      const cpNamespace = opts.namespace ?? process.env.POD_NAMESPACE ?? 'weft-system'
      // with the CA on, injected sidecars ask it for their SVID at the control plane's Service
      const caPort = opts.caListen === undefined ? undefined : opts.caListen.slice(opts.caListen.lastIndexOf(':') + 1)
      process.exitCode = await runControlPlane({ listen: opts.listen, admin: opts.admin, local: opts.local, kubernetes,
        outboundPort: port,
        pushThrottle,
        security: { rootNamespace: opts.rootNamespace ?? cpNamespace, autoMtls: opts.autoMtls },
        webhook: opts.webhookListen === undefined ? undefined : {
          listen: opts.webhookListen,
          service: opts.webhookService,
          namespace: cpNamespace,
          mesh: {
            ...(opts.proxyImage === undefined ? {} : { image: opts.proxyImage }),
            ...(caPort === undefined ? {} : { caAddress: `${opts.webhookService}.${cpNamespace}.svc:${caPort}` }),
          },
        },
        ca: opts.caListen === undefined ? undefined : {
          listen: opts.caListen,
          trustDomain: opts.trustDomain,
          dir: opts.caDir,
          tokensFile: opts.caTokens,
          namespace: opts.namespace,
          certFile: opts.caCert,
          keyFile: opts.caKey,
          chainFile: opts.caChain,
          tls: opts.caTls,
        },
      })
    })
}
