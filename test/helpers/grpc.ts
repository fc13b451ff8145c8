// HTTP/2 and gRPC test helpers: a small gRPC service (JSON messages, defined with grpc-js's
// generic client constructor, so no .proto is needed) with a real @grpc/grpc-js server and client,
// and two sidecars in a row whose clusters speak HTTP/2 (client sidecar outbound → server sidecar
// inbound → app), with routes of the test's choosing on either sidecar.
import * as grpc from '@grpc/grpc-js'
import type { Bootstrap, Cluster, Route } from '../../api/schema.ts'
import { LISTENER, startTestSidecar, type Teardown, type TestSidecar } from './sidecar.ts'

export interface Msg {
  text: string
  n?: number
}

const serialize = (v: Msg): Buffer => Buffer.from(JSON.stringify(v))
const deserialize = (b: Buffer): Msg => JSON.parse(b.toString('utf8'))

function method(name: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<Msg, Msg> {
  return {
    path: `/weft.test.Echo/${name}`,
    requestStream,
    responseStream,
    requestSerialize: serialize,
    requestDeserialize: deserialize,
    responseSerialize: serialize,
    responseDeserialize: deserialize,
  }
}

export const EchoService = {
  unary: method('Unary', false, false),
  serverStream: method('ServerStream', false, true),
  clientStream: method('ClientStream', true, false),
  bidi: method('Bidi', true, true),
} satisfies grpc.ServiceDefinition

export type EchoImpl = {
  unary: grpc.handleUnaryCall<Msg, Msg>
  serverStream: grpc.handleServerStreamingCall<Msg, Msg>
  clientStream: grpc.handleClientStreamingCall<Msg, Msg>
  bidi: grpc.handleBidiStreamingCall<Msg, Msg>
}

/** Echo: unary answers text back; serverStream sends n messages; clientStream joins; bidi echoes each. */
export const echoImpl: EchoImpl = {
  unary: (call, cb) => cb(null, { text: call.request.text }),
  serverStream: (call) => {
    const n = call.request.n ?? 3
    for (let i = 0; i < n; i++) call.write({ text: `${call.request.text}-${i}`, n: i })
    call.end()
  },
  clientStream: (call, cb) => {
    const parts: string[] = []
    call.on('data', (m: Msg) => parts.push(m.text))
    call.on('end', () => cb(null, { text: parts.join('+'), n: parts.length }))
  },
  bidi: (call) => {
    call.on('data', (m: Msg) => call.write({ text: 'echo:' + m.text }))
    call.on('end', () => call.end())
  },
}

/** A grpc-js server on 127.0.0.1:0 with the Echo service (parts of impl replace echoImpl's). */
export async function startGrpcServer(t: Teardown, impl: Partial<EchoImpl> = {}): Promise<{ port: number; server: grpc.Server }> {
  const server = new grpc.Server()
  server.addService(EchoService, { ...echoImpl, ...impl } as unknown as grpc.UntypedServiceImplementation)
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  )
  t.teardown(() => server.forceShutdown())
  return { port, server }
}

export const EchoClient = grpc.makeGenericClientConstructor(EchoService, 'Echo')

export type Client = grpc.Client & Record<keyof typeof EchoService, (...args: unknown[]) => unknown>

/** A grpc-js client of the Echo service at 127.0.0.1:port (through a sidecar: the sidecar's port). */
export function echoClient(t: Teardown, port: number): Client {
  const c = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as Client
  t.teardown(() => c.close())
  return c
}

/** Unary call as a promise: the response, or the error (a ServiceError) and the trailing metadata. */
export function unary(c: Client, req: Msg, opts: grpc.CallOptions = {}, md = new grpc.Metadata()): Promise<{ res?: Msg; err?: grpc.ServiceError; trailers?: grpc.Metadata }> {
  return new Promise((resolve) => {
    let trailers: grpc.Metadata | undefined
    const call = (c.unary as (r: Msg, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Msg) => void) => grpc.ClientUnaryCall)(
      req, md, opts, (err, res) => setImmediate(() => resolve(err ? { err, trailers } : { res, trailers })),
    )
    call.on('status', (s: grpc.StatusObject) => {
      trailers = s.metadata
    })
  })
}

export interface GrpcMesh {
  client: TestSidecar
  server: TestSidecar
}

export interface GrpcMeshOptions {
  /** routes of the client sidecar (default: everything to the server sidecar) */
  clientRoutes?: (cluster: string) => Route[]
  /** routes of the server sidecar (default: everything to the app) */
  serverRoutes?: (cluster: string) => Route[]
  /** extra fields of the app cluster (server sidecar) */
  app?: Partial<Cluster>
  /** the app cluster's protocol (default http2) */
  appProtocol?: 'http1' | 'http2'
  /** the client sidecar's cluster protocol (default http2) */
  meshProtocol?: 'http1' | 'http2'
  /** telemetry of the client sidecar (e.g. an access log) */
  clientTelemetry?: Bootstrap['telemetry']
}

function config(direction: 'inbound' | 'outbound', clusterName: string, port: number, routes: Route[], cluster: Partial<Cluster>): Bootstrap {
  return {
    admin: { address: '127.0.0.1', port: 0 },
    listeners: [{ name: LISTENER, direction, address: '127.0.0.1', port: 0, routeTable: 'rt' }],
    routeTables: [{ name: 'rt', virtualHosts: [{ name: 'all', domains: ['*'], routes }] }],
    clusters: [{ name: clusterName, protocol: 'http2', ...cluster, endpoints: [{ address: '127.0.0.1', port }] }],
  }
}

/** client → client sidecar (outbound, h2 cluster "mesh") → server sidecar (inbound, h2 cluster "app") → app. */
export async function startGrpcMesh(t: Teardown, appPort: number, o: GrpcMeshOptions = {}): Promise<GrpcMesh> {
  const to = (c: string): Route[] => [{ backends: [{ cluster: c }] }]
  const server = await startTestSidecar(t, config('inbound', 'app', appPort, (o.serverRoutes ?? to)('app'), { protocol: o.appProtocol ?? 'http2', ...o.app }))
  const cc = config('outbound', 'mesh', server.port, (o.clientRoutes ?? to)('mesh'), { protocol: o.meshProtocol ?? 'http2' })
  if (o.clientTelemetry !== undefined) cc.telemetry = o.clientTelemetry
  const client = await startTestSidecar(t, cc)
  return { client, server }
}
