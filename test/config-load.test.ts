import t from 'tap'
import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseDuration } from '../api/duration.ts'
import { ConfigErrorCode, formatConfigError } from '../api/errors.ts'
import type { ConfigError } from '../api/errors.ts'
import { loadBootstrapFile, loadBootstrapFileSync, parseBootstrap, serviceDomains } from '../api/load.ts'
import { watchFile } from '../api/watch.ts'

/** YAML from an indented template literal: drops the first newline and the common indentation. */
function y(strings: TemplateStringsArray, ...values: unknown[]): string {
  const text = String.raw({ raw: strings }, ...values).replace(/^\n/, '')
  const lines = text.split('\n')
  const indent = Math.min(...lines.filter((l) => l.trim() !== '').map((l) => l.length - l.trimStart().length))
  return lines.map((l) => l.slice(indent)).join('\n').replace(/[ ]+$/, '')
}

/** The formatted errors of a YAML text (file name "b.yaml"), or [] if it loads. */
function errorsOf(text: string): string[] {
  const r = parseBootstrap(text, 'b.yaml')
  return r.ok ? [] : r.errors.map(formatConfigError)
}

function codesOf(text: string): string[] {
  const r = parseBootstrap(text, 'b.yaml')
  return r.ok ? [] : r.errors.map((e) => e.code)
}

// The smallest config that loads; fixtures below append to or change it.
const TAIL = y`
  routeTables:
    - name: rt
      virtualHosts:
        - name: vh
          domains: ["*"]
          routes:
            - backends: [{ cluster: c }]
  clusters:
    - name: c
      endpoints: [{ address: 127.0.0.1, port: 8080 }]
`

t.test('parseDuration', async (t) => {
  t.equal(parseDuration('250ms'), 250)
  t.equal(parseDuration('5s'), 5000)
  t.equal(parseDuration('1m30s'), 90_000)
  t.equal(parseDuration('1.5s'), 1500)
  t.equal(parseDuration('1.1s'), 1100)
  t.equal(parseDuration('2h'), 7_200_000)
  t.equal(parseDuration('1h2m3s4ms'), 3_723_004)
  t.equal(parseDuration('0s'), 0)
  t.equal(parseDuration('0.5ms'), 0.5)
  for (const bad of ['', '5', 's', '5 s', '-5s', '+5s', '5d', '5S', '1.s', '.5s', '5s ', '5sec', '1e3ms']) {
    t.throws(() => parseDuration(bad), RangeError, `rejects ${JSON.stringify(bad)}`)
  }
})

t.test('formatConfigError', async (t) => {
  const e: ConfigError = { code: ConfigErrorCode.SCHEMA, file: 'a.yaml', line: 3, column: 7, path: 'listeners[0].port', message: 'must be x' }
  t.equal(formatConfigError(e), 'a.yaml:3:7: listeners[0].port: must be x')
  t.equal(formatConfigError({ ...e, path: '' }), 'a.yaml:3:7: must be x', 'no path: no empty segment')
  t.equal(formatConfigError({ ...e, message: 'two\nlines' }), 'a.yaml:3:7: listeners[0].port: two lines', 'always one line')
})

t.test('the example bootstrap loads', async (t) => {
  const path = fileURLToPath(new URL('../examples/bootstrap.yaml', import.meta.url))
  const r = await loadBootstrapFile(path)
  if (!r.ok) t.fail(r.errors.map(formatConfigError).join('\n'))
  else {
    t.same(r.config.admin, { address: '127.0.0.1', port: 15000 })
    t.same(r.config.listeners.map((l) => [l.name, l.address, l.port, l.routeTable]), [
      ['outbound', '127.0.0.1', 15001, 'outbound'],
      ['inbound', '127.0.0.1', 15006, 'inbound'],
    ])
    const out = r.config.routeTables.find((rt) => rt.name === 'outbound')
    const hello = out?.virtualHosts[0]
    t.same(hello?.service, { name: 'hello', namespace: 'default', port: 8080 })
    t.same(hello?.routes.map((rt) => rt.name), ['healthz', 'canary', 'default'])
    t.same(hello?.routes[0].directResponse?.status, 200)
    t.same(hello?.routes[1].match?.headers, [{ name: 'x-canary', exact: '1' }])
    t.same(hello?.routes[1].requestHeaders?.add, { 'x-weft-route': 'canary' })
    const inbound = r.config.routeTables.find((rt) => rt.name === 'inbound')
    t.same(inbound?.virtualHosts[0].routes[0].backends, [{ cluster: 'inbound-local' }])
    t.same(r.config.clusters.map((c) => [c.name, c.endpoints]), [
      ['hello', [{ address: '127.0.0.1', port: 8080 }]],
      ['inbound-local', [{ address: '127.0.0.1', port: 8080 }]],
    ])
  }
  t.ok(loadBootstrapFileSync(path).ok, 'sync variant too')
})

t.test('a valid config parses and is not mutated (no defaults filled in)', async (t) => {
  const r = parseBootstrap(y`
    listeners:
      - { name: out, direction: outbound, port: 15001, routeTable: rt }
  ` + TAIL, 'b.yaml')
  t.ok(r.ok)
  if (r.ok) {
    t.same(r.config.listeners[0], { name: 'out', direction: 'outbound', port: 15001, routeTable: 'rt' })
    t.notOk('address' in r.config.listeners[0], 'address default not applied')
    t.notOk('lb' in r.config.clusters[0])
    t.notOk('weight' in (r.config.routeTables[0].virtualHosts[0].routes[0].backends?.[0] ?? {}))
  }
})

t.test('WEFT_ERR_CONFIG_READ: unreadable file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-config-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const missing = join(dir, 'missing.yaml')
  const r = await loadBootstrapFile(missing)
  t.notOk(r.ok)
  if (!r.ok) {
    t.equal(r.errors[0].code, 'WEFT_ERR_CONFIG_READ')
    t.equal(formatConfigError(r.errors[0]), `${missing}:0:0: cannot read the config file: it does not exist`)
  }
  const r2 = loadBootstrapFileSync(dir)
  t.same(r2.ok ? [] : r2.errors.map(formatConfigError), [`${dir}:0:0: cannot read the config file: it is a directory`])
})

t.test('WEFT_ERR_CONFIG_SYNTAX', async (t) => {
  const text = y`
    listeners:
      - name: a
       port: 1
    clusters: [
  `
  t.same(codesOf(text), ['WEFT_ERR_CONFIG_SYNTAX', 'WEFT_ERR_CONFIG_SYNTAX'])
  t.same(errorsOf(text), [
    'b.yaml:3:1: Sequence item without - indicator',
    'b.yaml:5:1: Flow sequence in block collection must be sufficiently indented and end with a ]',
  ])
  t.same(errorsOf('listeners: []\nlisteners: []\n'), ['b.yaml:2:1: Map keys must be unique'], 'duplicate keys')
  t.same(errorsOf('listeners: *tpl\n'), ['b.yaml:1:12: undefined alias "*tpl" (the anchor must be set before the alias)'])
  t.same(errorsOf('listeners: !list []\n'), ['b.yaml:1:12: Unresolved tag: !list'])
  t.same(errorsOf('# only a comment\n'), ['b.yaml:1:1: the file is empty: expected a mapping with listeners, routeTables and clusters'])
  t.same(errorsOf('- a\n'), ['b.yaml:1:1: the config must be a mapping with listeners, routeTables and clusters'])
})

t.test('WEFT_ERR_CONFIG_SCHEMA: one fixture per kind of violation', async (t) => {
  const listener = (body: string): string => `listeners:\n  - name: out\n${body}${TAIL}`
  t.same(codesOf(listener('    direction: outbound\n    prot: 15001\n    routeTable: rt\n')), [
    'WEFT_ERR_CONFIG_SCHEMA',
    'WEFT_ERR_CONFIG_SCHEMA',
  ])
  // Unknown field: points at the key; required: points at the object.
  t.same(errorsOf(listener('    direction: outbound\n    prot: 15001\n    routeTable: rt\n')), [
    'b.yaml:2:5: listeners[0]: missing required field "port"',
    'b.yaml:4:5: listeners[0].prot: unknown field "prot" (did you mean "port"?)',
  ])
  t.same(errorsOf(listener('    direction: outbound\n    port: 70000\n    routeTable: rt\n')), [
    'b.yaml:4:11: listeners[0].port: must be an integer between 0 and 65535',
  ])
  t.same(errorsOf(listener('    direction: outbound\n    port: "15001"\n    routeTable: rt\n')), [
    'b.yaml:4:11: listeners[0].port: must be an integer between 0 and 65535',
  ])
  t.same(errorsOf(listener('    direction: outbound\n    port:\n    routeTable: rt\n')), [
    'b.yaml:4:5: listeners[0].port: must be an integer between 0 and 65535',
  ], 'an empty value points at its key')
  t.same(errorsOf(listener('    direction: sideways\n    port: 1\n    routeTable: rt\n')), [
    'b.yaml:3:16: listeners[0].direction: must be one of inbound, outbound',
  ], 'a union of literals is one message, not one per branch')
  t.same(errorsOf(listener('    direction: outbound\n    port: 1\n    routeTable: "rt!"\n')), [
    'b.yaml:5:17: listeners[0].routeTable: must be a name of letters, digits, "-", "_", "." or "|" that starts and ends with a letter or digit',
  ])

  const clusters = (lb: string): string => y`
    listeners: []
    routeTables: []
    clusters:
      - name: c
        lb: ${lb}
        endpoints: []
  `
  t.same(errorsOf(clusters('{ policy: random }')), [
    'b.yaml:5:19: clusters[0].lb.policy: must be one of roundRobin, leastRequest, peakEwma, ringHash, maglev',
  ])
  t.same(errorsOf(clusters('{ policy: peakEwma, decay: 10 seconds }')), [
    'b.yaml:5:36: clusters[0].lb.decay: must be a duration such as "250ms" or "5s"',
  ])
  t.same(errorsOf(clusters('{ policy: peakEwma, decay: 10 }')), [
    'b.yaml:5:36: clusters[0].lb.decay: must be a duration such as "250ms" or "5s"',
  ], 'a number where a duration is expected')
  t.same(errorsOf(clusters('{ hashHeader: "x user" }')), [
    "b.yaml:5:23: clusters[0].lb.hashHeader: must be a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)",
  ])

  const routes = y`
    listeners: []
    clusters: [{ name: c, endpoints: [] }]
    routeTables:
      - name: rt
        virtualHosts:
          - name: vh
            domains: ["*"]
            routes:
              - backends: [{ cluster: c }]
                match:
                  path: { exact: healthz }
                  headers:
                    - { name: x-canary, exact: 1 }
                requestHeaders:
                  add:
                    "x canary": "1"
  `
  t.same(errorsOf(routes), [
    'b.yaml:11:30: routeTables[0].virtualHosts[0].routes[0].match.path.exact: must start with "/"',
    'b.yaml:13:44: routeTables[0].virtualHosts[0].routes[0].match.headers[0].exact: must be a string: write it in quotes, "1"',
    'b.yaml:16:17: routeTables[0].virtualHosts[0].routes[0].requestHeaders.add["x canary"]: invalid header name "x canary" (use letters, digits and !#$%&\'*+-.^_`|~)',
  ])
  t.same(errorsOf(y`
    listeners: []
    clusters: []
    routeTables:
      - name: rt
        virtualHosts:
          - name: vh
            routes: []
  `), ['b.yaml:7:17: routeTables[0].virtualHosts[0].routes: must not be empty'])
  t.same(errorsOf('listeners: {}\nrouteTables: []\n'), [
    'b.yaml:1:1: missing required field "clusters"',
    'b.yaml:1:12: listeners: must be a list',
  ], 'errors at the root have no path')
})

t.test('WEFT_ERR_CONFIG_REF: unknown route table / cluster', async (t) => {
  const text = y`
    listeners:
      - { name: out, direction: outbound, port: 15001, routeTable: outbnd }
      - { name: in, direction: inbound, port: 15006, routeTable: elsewhere }
    routeTables:
      - name: outbound
        virtualHosts:
          - name: vh
            domains: ["*"]
            routes:
              - backends: [{ cluster: helo }, { cluster: zzz }]
    clusters:
      - { name: hello, endpoints: [] }
  `
  t.same(codesOf(text), Array(4).fill('WEFT_ERR_CONFIG_REF'))
  t.same(errorsOf(text), [
    'b.yaml:2:64: listeners[0].routeTable: unknown route table "outbnd" (did you mean "outbound"?)',
    'b.yaml:3:62: listeners[1].routeTable: unknown route table "elsewhere" (defined: outbound)',
    'b.yaml:10:35: routeTables[0].virtualHosts[0].routes[0].backends[0].cluster: unknown cluster "helo" (did you mean "hello"?)',
    'b.yaml:10:54: routeTables[0].virtualHosts[0].routes[0].backends[1].cluster: unknown cluster "zzz" (defined: hello)',
  ])
})

t.test('WEFT_ERR_CONFIG_INVALID: semantic checks', async (t) => {
  await t.test('duplicate names', async (t) => {
    const text = y`
      listeners:
        - { name: l, direction: outbound, port: 1, routeTable: rt }
        - { name: l, direction: inbound, port: 2, routeTable: rt }
      routeTables:
        - name: rt
          virtualHosts:
            - { name: vh, domains: [a], routes: [{ backends: [{ cluster: c }] }] }
            - { name: vh, domains: [b], routes: [{ backends: [{ cluster: c }] }] }
        - { name: rt, virtualHosts: [] }
      clusters:
        - { name: c, endpoints: [] }
        - { name: c, endpoints: [] }
    `
    t.same(codesOf(text), Array(4).fill('WEFT_ERR_CONFIG_INVALID'))
    t.same(errorsOf(text), [
      'b.yaml:3:13: listeners[1].name: duplicate listener name "l" (first defined at line 2)',
      'b.yaml:8:17: routeTables[0].virtualHosts[1].name: duplicate virtual host name "vh" (first defined at line 7)',
      'b.yaml:9:13: routeTables[1].name: duplicate route table name "rt" (first defined at line 5)',
      'b.yaml:12:13: clusters[1].name: duplicate cluster name "c" (first defined at line 11)',
    ])
  })

  await t.test('framing and connection headers cannot be mutated', async (t) => {
    const text = y`
      listeners: []
      routeTables:
        - name: rt
          virtualHosts:
            - name: vh
              domains: ["*"]
              routes:
                - backends: [{ cluster: c }]
                  requestHeaders:
                    set: { content-length: "0", host: example.com }
                    add: { transfer-encoding: chunked }
                  responseHeaders:
                    remove: [connection]
      clusters:
        - { name: c, endpoints: [] }
    `
    t.same(errorsOf(text), [
      'b.yaml:10:22: routeTables[0].virtualHosts[0].routes[0].requestHeaders.set.content-length: header "content-length" is managed by the proxy (framing and connection headers cannot be changed)',
      'b.yaml:11:22: routeTables[0].virtualHosts[0].routes[0].requestHeaders.add.transfer-encoding: header "transfer-encoding" is managed by the proxy (framing and connection headers cannot be changed)',
      'b.yaml:13:24: routeTables[0].virtualHosts[0].routes[0].responseHeaders.remove[0]: header "connection" is managed by the proxy (framing and connection headers cannot be removed)',
    ], 'requestHeaders.set of host is allowed (it replaces the authority)')
  })

  await t.test('ports', async (t) => {
    const text = y`
      admin: { address: 127.0.0.1, port: 15001 }
      listeners:
        - { name: a, direction: outbound, port: 15001, routeTable: rt }
        - { name: b, direction: inbound, port: 15001, routeTable: rt }
        - { name: c, direction: inbound, port: 0, routeTable: rt }
        - { name: d, direction: inbound, port: 0, routeTable: rt }
    ` + TAIL
    t.same(errorsOf(text), [
      'b.yaml:1:36: admin.port: admin port 15001 is also used by listener "a" (line 3)',
      'b.yaml:4:42: listeners[1].port: port 15001 is already used by listener "a" (line 3)',
    ], 'port 0 (any free port) may repeat')
  })

  await t.test('routes: one of backends, directResponse or redirect; weights', async (t) => {
    const text = y`
      listeners: []
      clusters: [{ name: c, endpoints: [] }]
      routeTables:
        - name: rt
          virtualHosts:
            - name: vh
              domains: ["*"]
              routes:
                - name: both
                  backends: [{ cluster: c }]
                  directResponse: { status: 200 }
                - name: neither
                - name: zero
                  backends: [{ cluster: c, weight: 0 }, { cluster: c, weight: 0 }]
                - name: some-zero
                  backends: [{ cluster: c, weight: 0 }, { cluster: c }]
    `
    t.same(errorsOf(text), [
      'b.yaml:11:13: routeTables[0].virtualHosts[0].routes[0].directResponse: route must set only one of "backends", "directResponse" or "redirect", found "backends" and "directResponse"',
      'b.yaml:12:13: routeTables[0].virtualHosts[0].routes[1]: route must set one of "backends", "directResponse" or "redirect"',
      'b.yaml:14:23: routeTables[0].virtualHosts[0].routes[2].backends: all backend weights are 0: at least one backend needs a positive weight',
    ])
  })

  await t.test('matches and regexes', async (t) => {
    const text = y`
      listeners: []
      clusters: [{ name: c, endpoints: [] }]
      routeTables:
        - name: rt
          virtualHosts:
            - name: vh
              domains: ["*"]
              routes:
                - backends: [{ cluster: c }]
                  match:
                    path: { exact: /a, prefix: /b }
                    headers:
                      - name: x-none
                      - { name: x-two, exact: "1", present: true }
                      - { name: x-re, regex: "(" }
                    queryParams:
                      - { name: q, regex: "[a-" }
                - backends: [{ cluster: c }]
                  match: { path: { regex: "*" } }
    `
    t.same(errorsOf(text), [
      'b.yaml:11:34: routeTables[0].virtualHosts[0].routes[0].match.path.prefix: path match must set at most one of exact, prefix, segmentPrefix or regex, found exact and prefix',
      'b.yaml:13:19: routeTables[0].virtualHosts[0].routes[0].match.headers[0]: header match "x-none" must set one of exact, prefix, regex or present',
      'b.yaml:14:46: routeTables[0].virtualHosts[0].routes[0].match.headers[1].present: header match "x-two" must set only one of exact, prefix, regex or present, found exact and present',
      'b.yaml:15:40: routeTables[0].virtualHosts[0].routes[0].match.headers[2].regex: Invalid regular expression: /(/: Unterminated group',
      'b.yaml:17:37: routeTables[0].virtualHosts[0].routes[0].match.queryParams[0].regex: Invalid regular expression: /[a-/: Unterminated character class',
      'b.yaml:19:37: routeTables[0].virtualHosts[0].routes[1].match.path.regex: Invalid regular expression: /*/: Nothing to repeat',
    ])
  })

  await t.test('hash policies need hashHeader', async (t) => {
    const text = y`
      listeners: []
      routeTables: []
      clusters:
        - { name: a, lb: { policy: ringHash }, endpoints: [] }
        - { name: b, lb: { policy: maglev, hashHeader: x-user }, endpoints: [] }
        - { name: c, lb: { policy: maglev }, endpoints: [] }
    `
    t.same(errorsOf(text), [
      'b.yaml:4:30: clusters[0].lb.policy: policy "ringHash" requires lb.hashHeader (the request header whose value picks the endpoint)',
      'b.yaml:6:30: clusters[2].lb.policy: policy "maglev" requires lb.hashHeader (the request header whose value picks the endpoint)',
    ])
  })

  await t.test('domains claimed twice in one table', async (t) => {
    const text = y`
      listeners: []
      clusters: []
      routeTables:
        - name: rt
          virtualHosts:
            - name: a
              service: { name: hello, port: 8080 }
              routes: [{ directResponse: { status: 200 } }]
            - name: b
              service: { name: hello, namespace: default }
              routes: [{ directResponse: { status: 200 } }]
            - name: c
              domains: [other, HELLO.default.svc.cluster.local:8080]
              routes: [{ directResponse: { status: 200 } }]
            - name: d
              service: { name: hello, namespace: prod }
              domains: [other]
              routes: [{ directResponse: { status: 200 } }]
            - name: e
              routes: [{ directResponse: { status: 200 } }]
        - name: other-table
          virtualHosts:
            - name: a
              service: { name: hello, port: 8080 }
              routes: [{ directResponse: { status: 200 } }]
    `
    t.same(errorsOf(text), [
      'b.yaml:10:18: routeTables[0].virtualHosts[1].service: domain "hello" (from service "hello") is already claimed by virtual host "a" (line 7)',
      'b.yaml:13:26: routeTables[0].virtualHosts[2].domains[1]: domain "HELLO.default.svc.cluster.local:8080" is already claimed by virtual host "a" (line 7)',
      // hello.prod.* differ from hello.default.*, but both services claim the short name "hello".
      'b.yaml:16:18: routeTables[0].virtualHosts[3].service: domain "hello" (from service "hello") is already claimed by virtual host "a" (line 7)',
      'b.yaml:17:19: routeTables[0].virtualHosts[3].domains[0]: domain "other" is already claimed by virtual host "c" (line 13)',
      'b.yaml:19:9: routeTables[0].virtualHosts[4]: virtual host "e" matches no host: set "service" or "domains"',
    ], 'one error per clashing source; another table may reuse a domain')
  })

  await t.test('durations', async (t) => {
    t.same(errorsOf(`drainTimeout: 1000h\nlisteners: []\n${TAIL}`), [
      'b.yaml:1:15: drainTimeout: duration "1000h" is too long: the maximum is 2147483647ms (about 596h)',
    ])
    t.same(errorsOf(`drainTimeout: 596h\nlimits: { idleTimeout: 1m30s }\nlisteners: []\n${TAIL}`), [])
  })
})

t.test('route policy and cluster resilience fields: references, exclusions, durations', async (t) => {
  const text = y`
    listeners: []
    clusters:
      - { name: c, endpoints: [], circuitBreaker: { window: 0s } }
    routeTables:
      - name: rt
        virtualHosts:
          - name: vh
            domains: ["*"]
            routes:
              - name: mirror
                backends: [{ cluster: c }]
                mirror: { cluster: shadow, percent: 10 }
              - name: redirect-and-backends
                backends: [{ cluster: c }]
                redirect: { path: /x }
              - name: paths
                match: { path: { prefix: /a, segmentPrefix: /a } }
                directResponse: { status: 200 }
              - name: rewrite
                match: { path: { exact: /a } }
                backends: [{ cluster: c }]
                rewrite: { pathPrefix: /b, path: /c }
              - name: rewrite-empty
                backends: [{ cluster: c }]
                rewrite: {}
              - name: redirect
                match: { path: { regex: "/a.*" } }
                redirect: { pathPrefix: /b }
              - name: redirect-both
                match: { path: { segmentPrefix: /a } }
                redirect: { path: /b, pathPrefix: /c }
              - name: policies
                match: { path: { segmentPrefix: /a } }
                backends: [{ cluster: c }]
                rewrite: { pathPrefix: /b }
                retry:
                  attempts: 2
                  retriableStatusCodes: [503]
                  backoff: { base: 1s, max: 10ms }
                  perTryTimeout: 1000h
                rateLimit: { requests: 1, interval: 0s, key: { header: x-user, clientAddress: true } }
                fault: {}
                timeout: 2s
              - name: on-codes
                backends: [{ cluster: c }]
                retry: { attempts: 1, on: [reset, retriable-status-codes] }
                rateLimit: { requests: 1, interval: 1s, key: {} }
                fault: { delay: { percent: 50, fixedDelay: 1s } }
  `
  t.same(codesOf(text).filter((c) => c === 'WEFT_ERR_CONFIG_REF').length, 1, 'the mirror cluster is a reference')
  t.same(errorsOf(text), [
    'b.yaml:3:57: clusters[0].circuitBreaker.window: must be longer than 0 (found "0s")',
    'b.yaml:12:32: routeTables[0].virtualHosts[0].routes[0].mirror.cluster: unknown cluster "shadow" (defined: c)',
    'b.yaml:15:13: routeTables[0].virtualHosts[0].routes[1].redirect: route must set only one of "backends", "directResponse" or "redirect", found "backends" and "redirect"',
    'b.yaml:17:42: routeTables[0].virtualHosts[0].routes[2].match.path.segmentPrefix: path match must set at most one of exact, prefix, segmentPrefix or regex, found prefix and segmentPrefix',
    'b.yaml:22:24: routeTables[0].virtualHosts[0].routes[3].rewrite.pathPrefix: rewrite.pathPrefix replaces the matched prefix: the route needs a match.path.prefix or match.path.segmentPrefix',
    'b.yaml:22:40: routeTables[0].virtualHosts[0].routes[3].rewrite.path: rewrite must set at most one of pathPrefix or path, found pathPrefix and path',
    'b.yaml:25:22: routeTables[0].virtualHosts[0].routes[4].rewrite: rewrite must set at least one of pathPrefix, path or host',
    'b.yaml:28:25: routeTables[0].virtualHosts[0].routes[5].redirect.pathPrefix: redirect.pathPrefix replaces the matched prefix: the route needs a match.path.prefix or match.path.segmentPrefix',
    'b.yaml:31:35: routeTables[0].virtualHosts[0].routes[6].redirect.pathPrefix: redirect must set at most one of path or pathPrefix, found path and pathPrefix',
    'b.yaml:38:15: routeTables[0].virtualHosts[0].routes[7].retry.retriableStatusCodes: retriableStatusCodes needs "retriable-status-codes" in retry.on (the default of on does not include it)',
    'b.yaml:39:41: routeTables[0].virtualHosts[0].routes[7].retry.backoff.max: backoff.max "10ms" is shorter than backoff.base "1s"',
    'b.yaml:40:30: routeTables[0].virtualHosts[0].routes[7].retry.perTryTimeout: duration "1000h" is too long: the maximum is 2147483647ms (about 596h)',
    'b.yaml:41:49: routeTables[0].virtualHosts[0].routes[7].rateLimit.interval: must be longer than 0 (found "0s")',
    'b.yaml:41:76: routeTables[0].virtualHosts[0].routes[7].rateLimit.key.clientAddress: rateLimit.key must set only one of header or clientAddress, found header and clientAddress',
    'b.yaml:42:20: routeTables[0].virtualHosts[0].routes[7].fault: fault must set delay, abort or both',
    'b.yaml:46:47: routeTables[0].virtualHosts[0].routes[8].retry.on[1]: "retriable-status-codes" needs retry.retriableStatusCodes (the codes to retry)',
    'b.yaml:47:58: routeTables[0].virtualHosts[0].routes[8].rateLimit.key: rateLimit.key must set one of header or clientAddress',
  ])
  t.same(errorsOf(y`
    listeners: []
    clusters: [{ name: c, endpoints: [] }]
    routeTables:
      - name: rt
        virtualHosts:
          - name: vh
            domains: ["*"]
            routes:
              - backends: [{ cluster: c }]
                fault: { abort: { percent: 101, status: 503 } }
  `), ['b.yaml:10:40: routeTables[0].virtualHosts[0].routes[0].fault.abort.percent: must be a number between 0 and 100'])
  t.same(errorsOf(y`
    listeners: []
    clusters:
      - name: c
        endpoints: []
        pool: { maxRequests: 100 }
        circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 20, window: 10s, buckets: 10, resetTimeout: 30s }
        outlierDetection: { consecutive5xx: 5, baseEjectionTime: 30s, maxEjectionTime: 5m, maxEjectionPercent: 50 }
    routeTables:
      - name: rt
        virtualHosts:
          - name: vh
            domains: ["*"]
            routes:
              - match: { path: { segmentPrefix: /api } }
                backends: [{ cluster: c }]
                rewrite: { pathPrefix: /v2, host: api.internal }
                mirror: { cluster: c, percent: 5 }
                timeout: 10s
                retry:
                  attempts: 3
                  on: [gateway-error, retriable-status-codes]
                  retriableStatusCodes: [409]
                  perTryTimeout: 2s
                  backoff: { base: 25ms, max: 250ms }
                  budget: { percent: 20, minRetriesPerSecond: 10, ttl: 10s }
                rateLimit: { requests: 100, interval: 1s, burst: 200, key: { clientAddress: true } }
                fault: { delay: { percent: 1, fixedDelay: 100ms }, abort: { percent: 0.5, status: 503 } }
              - match: { path: { prefix: /old } }
                redirect: { scheme: https, host: example.com, port: 8443, pathPrefix: /new, status: 301 }
  `), [], 'every field used as intended')
})

t.test('serviceDomains', async (t) => {
  t.same(serviceDomains({ name: 'hello' }), [
    'hello', 'hello.default', 'hello.default.svc', 'hello.default.svc.cluster.local',
  ])
  t.same(serviceDomains({ name: 'hello', namespace: 'prod', port: 80, clusterDomain: 'corp.local' }), [
    'hello', 'hello:80', 'hello.prod', 'hello.prod:80', 'hello.prod.svc', 'hello.prod.svc:80',
    'hello.prod.svc.corp.local', 'hello.prod.svc.corp.local:80',
  ])
})

t.test('a file with several errors reports all of them, in file order', async (t) => {
  const text = y`
    admin: { port: 99999 }
    listeners:
      - name: out
        direction: outbound
        port: 15001
        routeTable: rt
        adress: 127.0.0.1
      - name: in
        direction: in
        port: 15006
    routeTables: []
    clusters:
      - name: c
        lb: { policy: random }
        endpoints: [{ address: 127.0.0.1, port: 0 }]
  `
  t.same(errorsOf(text), [
    'b.yaml:1:16: admin.port: must be an integer between 0 and 65535',
    'b.yaml:7:5: listeners[0].adress: unknown field "adress" (did you mean "address"?)',
    'b.yaml:8:5: listeners[1]: missing required field "routeTable"',
    'b.yaml:9:16: listeners[1].direction: must be one of inbound, outbound',
    'b.yaml:14:19: clusters[0].lb.policy: must be one of roundRobin, leastRequest, peakEwma, ringHash, maglev',
    'b.yaml:15:45: clusters[0].endpoints[0].port: must be an integer between 1 and 65535',
  ])
  // Semantic errors only once the schema passes; then all of them too.
  t.equal(errorsOf(y`
    listeners:
      - { name: a, direction: outbound, port: 1, routeTable: x }
      - { name: a, direction: outbound, port: 1, routeTable: y }
  ` + TAIL).length, 4)
})

t.test('watchFile', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-watch-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'bootstrap.yaml')
  writeFileSync(file, 'a: 0\n')

  let calls = 0
  let waiter: (() => void) | undefined
  const w = watchFile(file, () => {
    calls++
    waiter?.()
  }, { debounceMs: 20 })
  t.teardown(() => w.close())
  const nextCall = (): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const timeout = setTimeout(() => reject(new Error('watcher did not fire within 2s')), 2000)
      waiter = () => {
        clearTimeout(timeout)
        waiter = undefined
        resolve()
      }
    })
  // The sleeps below are kept: each shows that a call does NOT come, which takes a few debounce
  // periods (20 ms) to see; watchFile takes no clock (its debounce is a real timer).
  const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

  await t.test('fires once for a burst of writes', async (t) => {
    const fired = nextCall()
    for (let i = 1; i <= 10; i++) writeFileSync(file, `a: ${i}\n`)
    await fired
    await sleep(100) // well past the 20 ms debounce: no second call
    t.equal(calls, 1)
  })

  await t.test('fires after an atomic rename-replace', async (t) => {
    const before = calls
    const fired = nextCall()
    writeFileSync(join(dir, '.bootstrap.yaml.tmp'), 'a: new\n')
    renameSync(join(dir, '.bootstrap.yaml.tmp'), file)
    await fired
    await sleep(60)
    t.equal(calls, before + 1)
  })

  await t.test('ignores other files of the directory', async (t) => {
    const before = calls
    writeFileSync(join(dir, 'unrelated.log'), 'x\n')
    await sleep(100)
    t.equal(calls, before)
  })

  await t.test('survives the file disappearing and coming back', async (t) => {
    const start = calls
    let fired = nextCall()
    unlinkSync(file)
    await fired
    fired = nextCall()
    writeFileSync(file, 'a: back\n')
    await fired
    fired = nextCall()
    writeFileSync(file, 'a: again\n')
    await fired
    t.equal(calls - start, 3, 'fired once each for the delete, the re-create and a later write')
  })

  await t.test('close stops it', async (t) => {
    w.close()
    const before = calls
    writeFileSync(file, 'a: closed\n')
    await sleep(60)
    t.equal(calls, before)
  })
})
