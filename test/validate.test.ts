// `weft validate` and the resource loader/validator behind it: one fixture per error class with
// the exact message a person sees (file:line:column: Kind namespace/name: field.path: message),
// multi-document files, directories, the JSON Schema files, and the real CLI's exit codes.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { formatConfigError } from '../api/errors.ts'
import { checkResourceTexts, loadResources } from '../control-plane/resources/validate.ts'
import { SCHEMA_DIR, schemaFiles } from '../control-plane/resources/export-schemas.ts'
import { ROOT, WEFT_BIN, tempDir } from './helpers/sidecar.ts'

/** YAML from an indented template literal: drops the first newline and the common indentation. */
function y(strings: TemplateStringsArray, ...values: unknown[]): string {
  const text = String.raw({ raw: strings }, ...values).replace(/^\n/, '')
  const lines = text.split('\n')
  const indent = Math.min(...lines.filter((l) => l.trim() !== '').map((l) => l.length - l.trimStart().length))
  return lines.map((l) => l.slice(indent)).join('\n').replace(/[ ]+$/, '')
}

// Two Services every fixture may use; they live in their own file so fixture positions are simple.
const SERVICES = y`
  apiVersion: v1
  kind: Service
  metadata: { name: reviews, namespace: shop }
  spec:
    ports: [{ name: http, port: 9080 }]
  ---
  apiVersion: v1
  kind: Service
  metadata: { name: reviews-v2, namespace: shop }
  spec:
    ports: [{ name: http, port: 9080 }]
`

/** The formatted errors of r.yaml (checked together with the Services), or [] when valid. */
function errorsOf(text: string): string[] {
  const r = checkResourceTexts([{ file: 'svc.yaml', text: SERVICES }, { file: 'r.yaml', text }])
  return r.ok ? [] : r.errors.map(formatConfigError)
}

function codesOf(text: string): string[] {
  const r = checkResourceTexts([{ file: 'svc.yaml', text: SERVICES }, { file: 'r.yaml', text }])
  return r.ok ? [] : r.errors.map((e) => e.code)
}

/** An HTTPRoute shop/reviews attached to Service reviews, with the given rules (YAML, indented 4). */
function route(rules: string): string {
  return y`
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: { name: reviews, namespace: shop }
    spec:
      parentRefs: [{ kind: Service, name: reviews }]
      rules:
  ` + rules.replace(/\n[ ]+$/, '\n')
}

t.test('a valid set checks out', async (t) => {
  t.same(errorsOf(route(y`
    - name: canary
      matches: [{ path: { type: PathPrefix, value: /reviews } }]
      backendRefs:
        - { name: reviews, port: 9080, weight: 90 }
        - { name: reviews-v2, port: 9080, weight: 10 }
  `.replace(/^/gm, '    '))), [])
})

t.test('WEFT_ERR_CONFIG_SYNTAX: YAML syntax, in the document where it is', async (t) => {
  const text = y`
    apiVersion: v1
    kind: Service
    metadata: { name: a, namespace: shop }
    spec:
      ports: [{ port: 80 }]
    ---
    apiVersion: v1
    kind: Service
      metadata: { name: b }
    ---
    apiVersion: v1
    kind: Service
    kind: Service
  `
  t.same(codesOf(text), Array(3).fill('WEFT_ERR_CONFIG_SYNTAX'))
  t.same(errorsOf(text), [
    'r.yaml:8:7: Nested mappings are not allowed in compact mappings',
    'r.yaml:8:7: Implicit keys need to be on a single line',
    'r.yaml:13:1: Map keys must be unique',
  ], 'the valid first document does not hide the errors of the others')
})

t.test('WEFT_ERR_CONFIG_SCHEMA: unknown field, wrong type, bad enum, bad duration', async (t) => {
  const text = route(y`
    - matches:
        - path: { type: Prefix, value: /a }
          headers: [{ name: end-user, value: 1 }]
      timeouts: { request: 10 seconds, backendRequest: 5 }
      backendRefs: [{ name: reviews, prot: 9080 }]
  `.replace(/^/gm, '    '))
  t.same(codesOf(text), Array(6).fill('WEFT_ERR_CONFIG_SCHEMA'))
  t.same(errorsOf(text), [
    'r.yaml:8:25: HTTPRoute shop/reviews: spec.rules[0].matches[0].path.type: must be one of Exact, PathPrefix, RegularExpression',
    'r.yaml:9:46: HTTPRoute shop/reviews: spec.rules[0].matches[0].headers[0].value: must be a string: write it in quotes, "1"',
    'r.yaml:10:28: HTTPRoute shop/reviews: spec.rules[0].timeouts.request: must be a Gateway API duration such as "10s", "500ms" or "1h30m" (whole numbers of at most 5 digits; units h, m, s, ms)',
    'r.yaml:10:56: HTTPRoute shop/reviews: spec.rules[0].timeouts.backendRequest: must be a Gateway API duration such as "10s", "500ms" or "1h30m" (whole numbers of at most 5 digits; units h, m, s, ms)',
    'r.yaml:11:21: HTTPRoute shop/reviews: spec.rules[0].backendRefs[0]: missing required field "port"',
    'r.yaml:11:38: HTTPRoute shop/reviews: spec.rules[0].backendRefs[0].prot: unknown field "prot" (did you mean "port"?)',
  ])
  // Names, timestamps and durations of TrafficPolicy (the proxy's form) say what they expect;
  // a resource is named by its metadata even when that name is invalid.
  t.same(errorsOf(y`
    apiVersion: policy.weft.io/v1alpha1
    kind: TrafficPolicy
    metadata: { name: Slow_Policy, namespace: shop, creationTimestamp: yesterday }
    spec:
      targetRefs: [{ group: "", kind: Service, name: reviews }]
      timeout: 5 s
  `), [
    'r.yaml:3:19: TrafficPolicy shop/Slow_Policy: metadata.name: must be lower-case letters, digits, "-" and ".", starting and ending with a letter or digit',
    'r.yaml:3:68: TrafficPolicy shop/Slow_Policy: metadata.creationTimestamp: must be an RFC 3339 time such as "2024-05-01T12:00:00Z"',
    'r.yaml:6:12: TrafficPolicy shop/Slow_Policy: spec.timeout: must be a duration such as "250ms" or "5s"',
  ])
  // Without a name, the document number says which one.
  t.same(errorsOf('apiVersion: v1\nkind: Service\nmetadata: { namespace: shop }\nspec: { ports: [{ port: 80 }] }\n'), [
    'r.yaml:3:11: document 1: metadata: missing required field "name"',
  ])
})

t.test('WEFT_ERR_CONFIG_SCHEMA: unknown kind or apiVersion, not a resource', async (t) => {
  const text = y`
    apiVersion: gateway.networking.k8s.io/v1
    kind: Gateway
    metadata: { name: gw }
    ---
    apiVersion: gateway.networking.k8s.io/v1beta1
    kind: HTTPRoute
    metadata: { name: old }
    ---
    kind: Service
    metadata: { name: a }
    ---
    - just a list
  `
  t.same(codesOf(text), Array(4).fill('WEFT_ERR_CONFIG_SCHEMA'))
  t.same(errorsOf(text), [
    'r.yaml:2:7: document 1: kind: unknown kind "Gateway" (apiVersion gateway.networking.k8s.io/v1); supported: v1 Service, discovery.k8s.io/v1 EndpointSlice, gateway.networking.k8s.io/v1 HTTPRoute, policy.weft.io/v1alpha1 TrafficPolicy, security.weft.io/v1alpha1 PeerAuthentication, security.weft.io/v1alpha1 AuthorizationPolicy',
    'r.yaml:5:13: document 2: apiVersion: apiVersion "gateway.networking.k8s.io/v1beta1" is not supported for HTTPRoute: use gateway.networking.k8s.io/v1',
    'r.yaml:9:1: document 3: missing required field "apiVersion"',
    'r.yaml:12:1: document 4: a resource must be a mapping with apiVersion, kind, metadata and spec',
  ])
})

t.test('WEFT_ERR_CONFIG_REF: unknown Service in parentRef, backendRef, mirror; wrong port', async (t) => {
  const text = y`
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: { name: reviews, namespace: shop }
    spec:
      parentRefs:
        - { kind: Service, name: reviwes }
        - { kind: Service, name: reviews, port: 9090 }
        - { kind: Service, name: reviews, namespace: default }
      rules:
        - backendRefs:
            - { name: ratings, port: 9080 }
            - { name: reviews-v2, port: 80 }
          filters:
            - type: RequestMirror
              requestMirror: { backendRef: { name: reviews-shadow, port: 9080 }, percent: 10 }
  `
  t.same(codesOf(text), Array(6).fill('WEFT_ERR_CONFIG_REF'))
  t.same(errorsOf(text), [
    'r.yaml:6:30: HTTPRoute shop/reviews: spec.parentRefs[0].name: unknown Service "shop/reviwes" (did you mean "shop/reviews"?)',
    'r.yaml:7:45: HTTPRoute shop/reviews: spec.parentRefs[1].port: Service shop/reviews has no port 9090 (its ports: 9080)',
    'r.yaml:8:30: HTTPRoute shop/reviews: spec.parentRefs[2].name: unknown Service "default/reviews" (defined: shop/reviews, shop/reviews-v2)',
    'r.yaml:11:19: HTTPRoute shop/reviews: spec.rules[0].backendRefs[0].name: unknown Service "shop/ratings" (defined: shop/reviews, shop/reviews-v2)',
    'r.yaml:12:37: HTTPRoute shop/reviews: spec.rules[0].backendRefs[1].port: Service shop/reviews-v2 has no port 80 (its ports: 9080)',
    'r.yaml:15:48: HTTPRoute shop/reviews: spec.rules[0].filters[0].requestMirror.backendRef.name: unknown Service "shop/reviews-shadow" (defined: shop/reviews, shop/reviews-v2)',
  ])
})

t.test('WEFT_ERR_CONFIG_REF: unknown TrafficPolicy target (Service, HTTPRoute, rule)', async (t) => {
  const text = route('    - { name: canary, backendRefs: [{ name: reviews, port: 9080 }] }\n') + '---\n' + y`
    apiVersion: policy.weft.io/v1alpha1
    kind: TrafficPolicy
    metadata: { name: p, namespace: shop }
    spec:
      targetRefs:
        - { group: "", kind: Service, name: ratings }
        - { group: gateway.networking.k8s.io, kind: HTTPRoute, name: review }
        - { group: gateway.networking.k8s.io, kind: HTTPRoute, name: reviews, sectionName: canery }
      timeout: 5s
  `
  t.same(codesOf(text), Array(3).fill('WEFT_ERR_CONFIG_REF'))
  t.same(errorsOf(text), [
    'r.yaml:14:41: TrafficPolicy shop/p: spec.targetRefs[0].name: unknown Service "shop/ratings" (defined: shop/reviews, shop/reviews-v2)',
    'r.yaml:15:66: TrafficPolicy shop/p: spec.targetRefs[1].name: unknown HTTPRoute "shop/review" (did you mean "shop/reviews"?)',
    'r.yaml:16:88: TrafficPolicy shop/p: spec.targetRefs[2].sectionName: HTTPRoute shop/reviews has no rule named "canery" (its rules: canary)',
  ])
})

t.test('WEFT_ERR_CONFIG_INVALID: all backendRef weights zero', async (t) => {
  t.same(errorsOf(route(y`
    - backendRefs:
        - { name: reviews, port: 9080, weight: 0 }
        - { name: reviews-v2, port: 9080, weight: 0 }
    - matches: [{ path: { value: /some-zero } }]
      backendRefs:
        - { name: reviews, port: 9080, weight: 0 }
        - { name: reviews-v2, port: 9080 }
  `.replace(/^/gm, '    '))), [
    'r.yaml:8:9: HTTPRoute shop/reviews: spec.rules[0].backendRefs: all backendRef weights are 0: at least one backend needs a positive weight',
  ])
})

t.test('WEFT_ERR_CONFIG_INVALID: a match shadowed by an earlier one, across HTTPRoutes of a Service', async (t) => {
  const text = route(y`
    - name: api
      matches:
        - path: { type: PathPrefix, value: /api }
        - path: { type: PathPrefix, value: /api/v1 }
          headers: [{ name: x-canary, value: "1" }]
        - path: { type: PathPrefix, value: /api/v1/ }
          headers: [{ name: X-Canary, value: "1" }]
          method: GET
      backendRefs: [{ name: reviews, port: 9080 }]
    - name: all
      backendRefs: [{ name: reviews, port: 9080 }]
  `.replace(/^/gm, '    ')) + '---\n' + y`
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: { name: zz-late, namespace: shop }
    spec:
      parentRefs: [{ kind: Service, name: reviews, port: 9080 }]
      rules:
        - matches:
            - path: { type: Exact, value: /api/x }
            - path: { type: RegularExpression, value: "/api/v[0-9]+/.*" }
            - path: { type: PathPrefix, value: /api/v1 }
              headers: [{ name: x-canary, value: "1" }]
          backendRefs: [{ name: reviews, port: 9080 }]
        - backendRefs: [{ name: reviews-v2, port: 9080 }]
  `
  // api match 2 ("/api/v1/" is "/api/v1", header names are case-insensitive) adds a method, which
  // ranks it before match 1 rather than behind it: both reachable. The exact path /api/x ranks
  // before every prefix: reachable.
  t.same(errorsOf(text), [
    // every PathPrefix ranks before any RegularExpression, so the catch-all "/" takes it first
    'r.yaml:27:11: HTTPRoute shop/zz-late: spec.rules[0].matches[1]: unreachable: shadowed by shop/reviews/all match 0 (r.yaml:16:7)',
    // equal matches: the route first in namespace/name order wins
    'r.yaml:28:11: HTTPRoute shop/zz-late: spec.rules[0].matches[2]: unreachable: shadowed by shop/reviews/api match 1 (r.yaml:10:11)',
    'r.yaml:31:7: HTTPRoute shop/zz-late: spec.rules[1]: unreachable: shadowed by shop/reviews/all match 0 (r.yaml:16:7)',
  ])

  // The older route wins a tie, whatever its name.
  const older = text
    .replace('metadata: { name: reviews, namespace: shop }', 'metadata: { name: reviews, namespace: shop, creationTimestamp: "2025-02-01T00:00:00Z" }')
    .replace('metadata: { name: zz-late, namespace: shop }', 'metadata: { name: zz-late, namespace: shop, creationTimestamp: "2025-01-01T00:00:00Z" }')
  t.same(errorsOf(older), [
    'r.yaml:10:11: HTTPRoute shop/reviews: spec.rules[0].matches[1]: unreachable: shadowed by shop/zz-late/0 match 2 (r.yaml:28:11)',
    'r.yaml:16:7: HTTPRoute shop/reviews: spec.rules[1]: unreachable: shadowed by shop/zz-late/1 match 0 (r.yaml:31:7)',
    'r.yaml:27:11: HTTPRoute shop/zz-late: spec.rules[0].matches[1]: unreachable: shadowed by shop/zz-late/1 match 0 (r.yaml:31:7)',
  ])
})

t.test('WEFT_ERR_CONFIG_INVALID: regular expressions that do not compile (JavaScript RegExp)', async (t) => {
  t.same(errorsOf(route(y`
    - matches:
        - path: { type: RegularExpression, value: "/(a" }
        - headers: [{ type: RegularExpression, name: x-user, value: "[a-" }]
        - queryParams: [{ type: RegularExpression, name: q, value: "(?P<n>x)" }]
      backendRefs: [{ name: reviews, port: 9080 }]
  `.replace(/^/gm, '    '))), [
    'r.yaml:8:51: HTTPRoute shop/reviews: spec.rules[0].matches[0].path.value: not a valid JavaScript regular expression: Unterminated group',
    'r.yaml:9:69: HTTPRoute shop/reviews: spec.rules[0].matches[1].headers[0].value: not a valid JavaScript regular expression: Unterminated character class',
    'r.yaml:10:68: HTTPRoute shop/reviews: spec.rules[0].matches[2].queryParams[0].value: not a valid JavaScript regular expression: Invalid group',
  ], 'RE2 syntax that JavaScript lacks is reported too')
})

t.test('WEFT_ERR_CONFIG_INVALID: duplicate resources, rule names, ports, cluster IPs', async (t) => {
  const text = SERVICES.split('---')[0] + '---\n' + route(y`
    - { name: a, backendRefs: [{ name: reviews, port: 9080 }] }
    - { name: a, matches: [{ path: { value: /x } }], backendRefs: [{ name: reviews, port: 9080 }] }
  `.replace(/^/gm, '    '))
  t.same(errorsOf(text), [
    'r.yaml:3:19: Service shop/reviews: metadata.name: duplicate Service shop/reviews (first defined at svc.yaml:3:19)',
    'r.yaml:14:15: HTTPRoute shop/reviews: spec.rules[1].name: duplicate rule name "a" (first used by rules[0], line 13)',
  ])
  t.same(errorsOf(y`
    apiVersion: v1
    kind: Service
    metadata: { name: a, namespace: shop }
    spec: { clusterIP: 10.0.0.1, clusterIPs: [10.0.0.1], ports: [{ name: http, port: 80 }, { port: 81 }, { name: http, port: 80 }] }
    ---
    apiVersion: v1
    kind: Service
    metadata: { name: b, namespace: shop }
    spec: { clusterIP: 10.0.0.1, ports: [{ port: 80 }] }
  `), [
    'r.yaml:4:88: Service shop/a: spec.ports[1]: port 81 needs a name: every port of a Service with more than one port is named',
    'r.yaml:4:110: Service shop/a: spec.ports[2].name: duplicate port name "http" (also ports[0])',
    'r.yaml:4:122: Service shop/a: spec.ports[2].port: duplicate port 80 (also ports[0])',
    'r.yaml:9:20: Service shop/b: spec.clusterIP: clusterIP 10.0.0.1 is also the address of Service shop/a (r.yaml:4:20)',
  ], 'ports and cluster IPs are unique too')
})

t.test('WEFT_ERR_CONFIG_INVALID: TrafficPolicy block on the wrong kind of target', async (t) => {
  const text = route('    - { name: canary, backendRefs: [{ name: reviews, port: 9080 }] }\n') + '---\n' + y`
    apiVersion: policy.weft.io/v1alpha1
    kind: TrafficPolicy
    metadata: { name: p, namespace: shop }
    spec:
      targetRefs:
        - { group: "", kind: Service, name: reviews }
        - { group: gateway.networking.k8s.io, kind: HTTPRoute, name: reviews, sectionName: canary }
        - { group: "", kind: Service, name: reviews-v2, sectionName: http }
      timeout: 5s
      connectionPool: { maxConnections: 10 }
      outlierDetection: { consecutive5xx: 3 }
  `
  t.same(errorsOf(text), [
    'r.yaml:16:53: TrafficPolicy shop/p: spec.targetRefs[2].sectionName: sectionName is only supported for HTTPRoute targets (a rule name): a policy on a Service applies to all its ports',
    'r.yaml:18:3: TrafficPolicy shop/p: spec.connectionPool: connectionPool applies to Services only, but targetRefs[1] is HTTPRoute reviews',
    'r.yaml:19:3: TrafficPolicy shop/p: spec.outlierDetection: outlierDetection applies to Services only, but targetRefs[1] is HTTPRoute reviews',
  ])
})

t.test('WEFT_ERR_CONFIG_INVALID: two TrafficPolicies setting the same block on the same target', async (t) => {
  const policy = (name: string, body: string) => y`
    apiVersion: policy.weft.io/v1alpha1
    kind: TrafficPolicy
    metadata: { name: ${name}, namespace: shop }
    spec:
      targetRefs: [{ group: "", kind: Service, name: reviews }]
  ` + body
  const text = [
    policy('first', '  timeout: 5s\n  loadBalancer: { policy: leastRequest }\n'),
    policy('second', '  timeout: 10s\n  retry: { attempts: 1 }\n'),
    policy('third', '  loadBalancer: { policy: peakEwma }\n  timeout: 1s\n'),
  ].join('---\n')
  t.same(errorsOf(text), [
    'r.yaml:14:3: TrafficPolicy shop/second: spec.timeout: timeout for Service shop/reviews is also set by TrafficPolicy shop/first (r.yaml:6:3)',
    'r.yaml:22:3: TrafficPolicy shop/third: spec.loadBalancer: loadBalancer for Service shop/reviews is also set by TrafficPolicy shop/first (r.yaml:7:3)',
    'r.yaml:23:3: TrafficPolicy shop/third: spec.timeout: timeout for Service shop/reviews is also set by TrafficPolicy shop/first (r.yaml:6:3)',
  ], 'different blocks on one target, or one block on different targets, do not conflict')
})

t.test('WEFT_ERR_CONFIG_INVALID: filters Weft does not support, and filters that do not combine', async (t) => {
  t.same(errorsOf(route(y`
    - filters:
        - type: ExtensionRef
          extensionRef: { group: example.com, kind: Auth, name: jwt }
      backendRefs:
        - name: reviews
          port: 9080
          filters:
            - type: RequestHeaderModifier
              requestHeaderModifier: { set: [{ name: x-backend, value: v1 }] }
    - matches: [{ path: { type: Exact, value: /old } }]
      filters:
        - type: URLRewrite
          urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /new } }
        - type: RequestRedirect
          requestRedirect: { statusCode: 301 }
        - type: RequestMirror
          requestMirror: { backendRef: { name: reviews-v2, port: 9080 } }
        - type: RequestMirror
          requestMirror: { backendRef: { name: reviews-v2, port: 9080 }, percent: 10, fraction: { numerator: 1 } }
  `.replace(/^/gm, '    '))), [
    'r.yaml:8:17: HTTPRoute shop/reviews: spec.rules[0].filters[0].type: filter type ExtensionRef is not supported by Weft (what Weft adds is in TrafficPolicy)',
    'r.yaml:13:11: HTTPRoute shop/reviews: spec.rules[0].backendRefs[0].filters: filters on a backendRef are not supported by Weft: put them on the rule',
    'r.yaml:19:39: HTTPRoute shop/reviews: spec.rules[1].filters[0].urlRewrite.path.type: ReplacePrefixMatch replaces the matched prefix: every match of the rule needs a PathPrefix path, matches[0] is Exact',
    'r.yaml:20:17: HTTPRoute shop/reviews: spec.rules[1].filters[1].type: a rule cannot have both URLRewrite and RequestRedirect',
    'r.yaml:24:17: HTTPRoute shop/reviews: spec.rules[1].filters[3].type: only one RequestMirror per rule is supported by Weft (another is filters[2])',
    'r.yaml:25:87: HTTPRoute shop/reviews: spec.rules[1].filters[3].requestMirror.fraction: set percent or fraction, not both',
  ])
})

t.test('WEFT_ERR_CONFIG_INVALID: TrafficPolicy blocks get the proxy\'s own checks', async (t) => {
  t.same(errorsOf(y`
    apiVersion: policy.weft.io/v1alpha1
    kind: TrafficPolicy
    metadata: { name: p, namespace: shop }
    spec:
      targetRefs: [{ group: "", kind: Service, name: reviews }]
      loadBalancer: { policy: maglev }
      retry: { attempts: 2, retriableStatusCodes: [503], backoff: { base: 1s, max: 100ms } }
      rateLimit: { requests: 10, interval: 0s, key: {} }
      timeout: 1000h
  `), [
    'r.yaml:6:27: TrafficPolicy shop/p: spec.loadBalancer.policy: policy "maglev" requires loadBalancer.hashHeader (the request header whose value picks the endpoint)',
    'r.yaml:7:25: TrafficPolicy shop/p: spec.retry.retriableStatusCodes: retriableStatusCodes needs "retriable-status-codes" in retry.on (the default of on does not include it)',
    'r.yaml:7:80: TrafficPolicy shop/p: spec.retry.backoff.max: backoff.max "100ms" is shorter than backoff.base "1s"',
    'r.yaml:8:40: TrafficPolicy shop/p: spec.rateLimit.interval: must be longer than 0 (found "0s")',
    'r.yaml:8:49: TrafficPolicy shop/p: spec.rateLimit.key: rateLimit.key must set one of header or clientAddress',
    'r.yaml:9:12: TrafficPolicy shop/p: spec.timeout: duration "1000h" is too long: the maximum is 2147483647ms (about 596h)',
  ])
})

t.test('WEFT_ERR_CONFIG_INVALID: TrafficPolicy targets: the group of the kind, a target twice, a rule name, no block', async (t) => {
  const text = route('    - { backendRefs: [{ name: reviews, port: 9080 }] }\n') + '---\n' + y`
    apiVersion: policy.weft.io/v1alpha1
    kind: TrafficPolicy
    metadata: { name: p, namespace: shop }
    spec:
      targetRefs:
        - { group: gateway.networking.k8s.io, kind: Service, name: reviews }
        - { group: core, kind: HTTPRoute, name: reviews }
        - { group: "", kind: Service, name: reviews }
        - { group: gateway.networking.k8s.io, kind: HTTPRoute, name: reviews, sectionName: first }
      timeout: 5s
    ---
    apiVersion: policy.weft.io/v1alpha1
    kind: TrafficPolicy
    metadata: { name: empty, namespace: shop }
    spec:
      targetRefs: [{ group: "", kind: Service, name: reviews-v2 }]
  `
  t.same(codesOf(text), ['WEFT_ERR_CONFIG_INVALID', 'WEFT_ERR_CONFIG_INVALID', 'WEFT_ERR_CONFIG_INVALID', 'WEFT_ERR_CONFIG_REF', 'WEFT_ERR_CONFIG_INVALID'])
  t.same(errorsOf(text), [
    'r.yaml:14:16: TrafficPolicy shop/p: spec.targetRefs[0].group: the group of a Service is "" (or "core")',
    'r.yaml:15:16: TrafficPolicy shop/p: spec.targetRefs[1].group: the group of an HTTPRoute is "gateway.networking.k8s.io"',
    'r.yaml:16:7: TrafficPolicy shop/p: spec.targetRefs[2]: the same target as targetRefs[0]',
    'r.yaml:17:88: TrafficPolicy shop/p: spec.targetRefs[3].sectionName: HTTPRoute shop/reviews has no rule named "first" (its rules have no names)',
    'r.yaml:24:3: TrafficPolicy shop/empty: spec: the policy sets nothing: add at least one of loadBalancer, connectionPool, circuitBreaker, outlierDetection, adaptiveConcurrency, tls, inbound, retry, timeout, rateLimit, globalRateLimit, fault',
  ])
})

t.test('WEFT_ERR_CONFIG_INVALID: match paths, a name matched twice, timeouts', async (t) => {
  t.same(errorsOf(route(y`
    - matches:
        - path: { type: Exact, value: reviews }
          headers: [{ name: X-User, value: a }, { name: x-user, value: b }]
          queryParams: [{ name: q, value: a }, { name: Q, value: b }, { name: q, value: c }]
      timeouts: { request: 1s, backendRequest: 2s }
      backendRefs: [{ name: reviews, port: 9080 }]
    - matches: [{ path: { value: reviews } }]
      timeouts: { request: 5s, backendRequest: 0s }
      backendRefs: [{ name: reviews, port: 9080 }]
    - matches: [{ path: { type: RegularExpression, value: "reviews/[0-9]+" } }]
      timeouts: { request: 0s, backendRequest: 10s }
      backendRefs: [{ name: reviews, port: 9080 }]
    - matches: [{ path: { value: /slow } }]
      timeouts: { request: 99999h }
      backendRefs: [{ name: reviews, port: 9080 }]
  `.replace(/^/gm, '    '))), [
    'r.yaml:8:39: HTTPRoute shop/reviews: spec.rules[0].matches[0].path.value: must start with "/" (path type Exact)',
    // header names are case-insensitive, query parameter names are not
    'r.yaml:9:57: HTTPRoute shop/reviews: spec.rules[0].matches[0].headers[1].name: "x-user" is matched twice in this match (each name at most once)',
    'r.yaml:10:79: HTTPRoute shop/reviews: spec.rules[0].matches[0].queryParams[2].name: "q" is matched twice in this match (each name at most once)',
    'r.yaml:11:48: HTTPRoute shop/reviews: spec.rules[0].timeouts.backendRequest: backendRequest "2s" is longer than request "1s" (the request timeout covers every try)',
    'r.yaml:13:34: HTTPRoute shop/reviews: spec.rules[1].matches[0].path.value: must start with "/" (path type PathPrefix)',
    'r.yaml:20:28: HTTPRoute shop/reviews: spec.rules[3].timeouts.request: duration "99999h" is too long: the maximum is 2147483647ms (about 596h)',
  ], '"0s" turns a timeout off: backendRequest 0s under a request timeout, or any backendRequest without one, is fine (as the Gateway API says); a regular expression need not start with "/"')
})

t.test('WEFT_ERR_CONFIG_INVALID: filters: the field of their type, each type once, header modifiers', async (t) => {
  t.same(errorsOf(route(y`
    - matches: [{ path: { value: /a } }]
      filters:
        - type: RequestHeaderModifier
        - type: ResponseHeaderModifier
          responseHeaderModifier: { add: [{ name: x-a, value: "1" }] }
          requestHeaderModifier: { set: [{ name: x-b, value: "1" }] }
        - type: ResponseHeaderModifier
          responseHeaderModifier: { remove: [x-c] }
      backendRefs: [{ name: reviews, port: 9080 }]
    - matches: [{ path: { value: /b } }]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{ name: Host, value: a.example }, { name: x-a, value: "1" }, { name: X-A, value: "2" }]
            add: [{ name: host, value: b }, { name: Content-Length, value: "1" }]
            remove: [connection, x-old]
        - type: ResponseHeaderModifier
          responseHeaderModifier: { set: [{ name: host, value: x }], remove: [Transfer-Encoding] }
      backendRefs: [{ name: reviews, port: 9080 }]
  `.replace(/^/gm, '    '))), [
    'r.yaml:9:11: HTTPRoute shop/reviews: spec.rules[0].filters[0]: a filter of type RequestHeaderModifier needs the field "requestHeaderModifier"',
    'r.yaml:12:11: HTTPRoute shop/reviews: spec.rules[0].filters[1].requestHeaderModifier: field "requestHeaderModifier" does not belong to a filter of type ResponseHeaderModifier',
    'r.yaml:13:17: HTTPRoute shop/reviews: spec.rules[0].filters[2].type: filter ResponseHeaderModifier is already used by filters[1] (each filter type at most once per rule)',
    // a request's Host may be set (only set), never added; framing and hop-by-hop headers are the proxy's
    'r.yaml:20:88: HTTPRoute shop/reviews: spec.rules[1].filters[0].requestHeaderModifier.set[2].name: header "X-A" is listed twice in set',
    'r.yaml:21:27: HTTPRoute shop/reviews: spec.rules[1].filters[0].requestHeaderModifier.add[0].name: header "host" is managed by the proxy (framing and connection headers cannot be changed)',
    'r.yaml:21:53: HTTPRoute shop/reviews: spec.rules[1].filters[0].requestHeaderModifier.add[1].name: header "Content-Length" is managed by the proxy (framing and connection headers cannot be changed)',
    'r.yaml:22:22: HTTPRoute shop/reviews: spec.rules[1].filters[0].requestHeaderModifier.remove[0]: header "connection" is managed by the proxy (framing and connection headers cannot be removed)',
    'r.yaml:24:51: HTTPRoute shop/reviews: spec.rules[1].filters[1].responseHeaderModifier.set[0].name: header "host" is managed by the proxy (framing and connection headers cannot be changed)',
    'r.yaml:24:79: HTTPRoute shop/reviews: spec.rules[1].filters[1].responseHeaderModifier.remove[0]: header "Transfer-Encoding" is managed by the proxy (framing and connection headers cannot be removed)',
  ])
})

t.test('WEFT_ERR_CONFIG_INVALID: rewrite and redirect paths, a redirect with backends, a mirror fraction', async (t) => {
  t.same(errorsOf(route(y`
    - matches: [{ path: { value: /old } }]
      filters:
        - type: URLRewrite
          urlRewrite: { path: { type: ReplaceFullPath, replacePrefixMatch: /x } }
      backendRefs: [{ name: reviews, port: 9080 }]
    - matches: [{ path: { value: /old2 } }]
      filters:
        - type: URLRewrite
          urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: new } }
      backendRefs: [{ name: reviews, port: 9080 }]
    - matches: [{ path: { value: /gone } }]
      filters:
        - type: RequestRedirect
          requestRedirect: { path: { type: ReplaceFullPath, replaceFullPath: /x, replacePrefixMatch: /y } }
      backendRefs: [{ name: reviews, port: 9080 }]
    - filters:
        - type: RequestMirror
          requestMirror: { backendRef: { name: reviews-v2, port: 9080 }, fraction: { numerator: 3, denominator: 2 } }
      backendRefs: [{ name: reviews, port: 9080 }]
  `.replace(/^/gm, '    '))), [
    'r.yaml:10:31: HTTPRoute shop/reviews: spec.rules[0].filters[0].urlRewrite.path: path type ReplaceFullPath needs the field "replaceFullPath"',
    'r.yaml:10:56: HTTPRoute shop/reviews: spec.rules[0].filters[0].urlRewrite.path.replacePrefixMatch: field "replacePrefixMatch" does not belong to path type ReplaceFullPath',
    'r.yaml:15:79: HTTPRoute shop/reviews: spec.rules[1].filters[0].urlRewrite.path.replacePrefixMatch: must start with "/"',
    'r.yaml:20:82: HTTPRoute shop/reviews: spec.rules[2].filters[0].requestRedirect.path.replacePrefixMatch: field "replacePrefixMatch" does not belong to path type ReplaceFullPath',
    'r.yaml:21:7: HTTPRoute shop/reviews: spec.rules[2].backendRefs: a rule with a RequestRedirect answers the request itself: its backendRefs would never be used',
    'r.yaml:24:97: HTTPRoute shop/reviews: spec.rules[3].filters[0].requestMirror.fraction.numerator: must not be more than the denominator (2)',
  ])
})

t.test('WEFT_ERR_CONFIG_INVALID: the proxy\'s checks of TrafficPolicy retry, rateLimit and fault', async (t) => {
  t.same(errorsOf(y`
    apiVersion: policy.weft.io/v1alpha1
    kind: TrafficPolicy
    metadata: { name: p, namespace: shop }
    spec:
      targetRefs: [{ group: "", kind: Service, name: reviews }]
      retry: { attempts: 1, on: [5xx, retriable-status-codes] }
      rateLimit: { requests: 1, interval: 1s, key: { header: x-user, clientAddress: true } }
      fault: {}
  `), [
    'r.yaml:6:35: TrafficPolicy shop/p: spec.retry.on[1]: "retriable-status-codes" needs retry.retriableStatusCodes (the codes to retry)',
    'r.yaml:7:66: TrafficPolicy shop/p: spec.rateLimit.key.clientAddress: rateLimit.key must set only one of header or clientAddress, found header and clientAddress',
    'r.yaml:8:10: TrafficPolicy shop/p: spec.fault: fault must set delay, abort or both',
  ])
})

t.test('WEFT_ERR_CONFIG_SCHEMA: what each kind of schema error says', async (t) => {
  const text = y`
    apiVersion: policy.weft.io/v1alpha1
    kind: TrafficPolicy
    metadata: { name: p, namespace: shop }
    spec:
      targetRefs: [{ group: "", kind: Service, name: reviews }]
      retries: { attempts: 1 }
      connectionPool: { colour: blue, maxConnections: 0 }
      loadBalancer: { policy: random }
      outlierDetection: 5
    ---
    apiVersion: gateway.networking.k8s.io/v1
    kind: HTTPRoute
    metadata: { name: r, namespace: shop }
    spec:
      parentRefs: []
      rules:
        - matches: [{ headers: [{ name: "bad header", value: x }], queryParams: [{ name: "a b", value: x }] }]
          filters: [{ type: URLRewrite, urlRewrite: { hostname: Example.COM } }]
          backendRefs: [{ name: reviews, port: 9080, weight: -1 }]
          retry: { codes: [503, 503], attempts: 11 }
    ---
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: { name: s, namespace: shop, labels: { kubernetes.io/service-name: reviews } }
    addressType: IPv4
    endpoints: [{ addresses: [10.0.0.1], conditions: { ready: "yes" } }]
  `
  t.same(codesOf(text), Array(13).fill('WEFT_ERR_CONFIG_SCHEMA'))
  t.same(errorsOf(text), [
    // no close name: the list of fields
    'r.yaml:6:3: TrafficPolicy shop/p: spec.retries: unknown field "retries" (expected one of targetRefs, loadBalancer, connectionPool, circuitBreaker, outlierDetection, adaptiveConcurrency, tls, inbound, retry, timeout, rateLimit, globalRateLimit, fault)',
    'r.yaml:7:21: TrafficPolicy shop/p: spec.connectionPool.colour: unknown field "colour" (expected one of maxConnections, maxPendingRequests, maxRequests, connectTimeout, idleTimeout)',
    'r.yaml:7:51: TrafficPolicy shop/p: spec.connectionPool.maxConnections: must be an integer of at least 1',
    'r.yaml:8:27: TrafficPolicy shop/p: spec.loadBalancer.policy: must be one of roundRobin, leastRequest, peakEwma, ringHash, maglev',
    'r.yaml:9:21: TrafficPolicy shop/p: spec.outlierDetection: must be a mapping',
    'r.yaml:15:15: HTTPRoute shop/r: spec.parentRefs: must not be empty',
    "r.yaml:17:37: HTTPRoute shop/r: spec.rules[0].matches[0].headers[0].name: must be a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)",
    "r.yaml:17:86: HTTPRoute shop/r: spec.rules[0].matches[0].queryParams[0].name: must be a valid query parameter name (letters, digits and !#$%&'*+-.^_`|~)",
    'r.yaml:18:61: HTTPRoute shop/r: spec.rules[0].filters[0].urlRewrite.hostname: must be a host name such as "example.com" (lower case, no port, no wildcard)',
    'r.yaml:19:58: HTTPRoute shop/r: spec.rules[0].backendRefs[0].weight: must be an integer between 0 and 1000000',
    'r.yaml:20:23: HTTPRoute shop/r: spec.rules[0].retry.codes: must not repeat an entry (entries 1 and 0 are the same)',
    'r.yaml:20:45: HTTPRoute shop/r: spec.rules[0].retry.attempts: must be an integer between 0 and 10',
    'r.yaml:26:59: EndpointSlice shop/s: endpoints[0].conditions.ready: must be true or false',
  ])
})

t.test('WEFT_ERR_CONFIG_SYNTAX and _SCHEMA: aliases, tabs, alias bombs, Lists, a kind that is not a string', async (t) => {
  const text = y`
    apiVersion: v1
    kind: Service
    metadata: { name: a, namespace: shop }
    spec:
      ports: *ports
    ---
    apiVersion: v1
    kind: Service
    metadata: { name: b, namespace: shop }
    spec:
    	ports: []
  `
  t.same(codesOf(text), ['WEFT_ERR_CONFIG_SYNTAX', 'WEFT_ERR_CONFIG_SYNTAX'])
  t.same(errorsOf(text), [
    'r.yaml:5:10: undefined alias "*ports" (the anchor must be set before the alias)',
    'r.yaml:11:1: Tabs are not allowed as indentation',
  ])
  const laughs = (name: string, item: string) => `  ${name}: &${name} [${Array(10).fill(item).join(', ')}]`
  const bomb = ['apiVersion: v1', 'kind: Service', 'metadata: { name: a, namespace: shop }', 'lol:', laughs('a', 'lol'), laughs('b', '*a'), laughs('c', '*b'), laughs('d', '*c'), 'spec: { ports: [{ port: 80 }] }', ''].join('\n')
  t.same(errorsOf(bomb), ['r.yaml:1:1: Excessive alias count indicates a resource exhaustion attack'], 'a document that expands without bound is refused before it is built')
  t.same(codesOf(bomb), ['WEFT_ERR_CONFIG_SYNTAX'])

  const lists = y`
    apiVersion: v1
    kind: List
    ---
    apiVersion: v1
    kind: List
    items: { a: 1 }
    ---
    apiVersion: v1
    kind: List
    items:
      - { apiVersion: v1, kind: List, items: [] }
    ---
    apiVersion: 1
    kind: Service
  `
  t.same(codesOf(lists), Array(4).fill('WEFT_ERR_CONFIG_SCHEMA'))
  t.same(errorsOf(lists), [
    'r.yaml:1:1: document 1: missing required field "items"',
    'r.yaml:6:8: document 2: items: must be a list',
    'r.yaml:11:29: document 3: items[0].kind: a List inside a List is not supported',
    'r.yaml:13:13: document 4: apiVersion: must be a string',
  ])
})

t.test('multi-document files, kind: List, empty documents, and errors across files in file order', async (t) => {
  const list = y`
    # a kubectl-style list, an empty document and a comment-only one are fine
    apiVersion: v1
    kind: List
    items:
      - apiVersion: v1
        kind: Service
        metadata: { name: ratings, namespace: shop }
        spec: { ports: [{ port: 9080 }] }
      - apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: ratings-1
          namespace: shop
          labels: { kubernetes.io/service-name: ratings }
        addressType: IPv4
        ports: [{ port: 9080 }]
        endpoints: [{ addresses: [10.1.0.1] }]
    ---
    ---
    # nothing
  `
  const r = checkResourceTexts([{ file: 'svc.yaml', text: SERVICES }, { file: 'list.yaml', text: list }])
  t.ok(r.ok)
  t.same(r.resources.services.map((s) => s.id), ['shop/reviews', 'shop/reviews-v2', 'shop/ratings'])
  t.same(r.resources.endpointSlices.map((s) => [s.id, s.file]), [['shop/ratings-1', 'list.yaml']])

  const bad = checkResourceTexts([
    { file: 'b.yaml', text: 'apiVersion: v1\nkind: Service\nmetadata: { name: x }\nspec: { ports: [{ port: 0 }] }\n' },
    { file: 'a.yaml', text: 'apiVersion: v1\nkind: List\nitems:\n  - { apiVersion: v1, kind: Sevice }\n' },
  ])
  t.same(bad.ok ? [] : bad.errors.map(formatConfigError), [
    'b.yaml:4:25: Service default/x: spec.ports[0].port: must be an integer between 1 and 65535',
    'a.yaml:4:29: document 1: items[0].kind: unknown kind "Sevice" (apiVersion v1); supported: v1 Service, discovery.k8s.io/v1 EndpointSlice, gateway.networking.k8s.io/v1 HTTPRoute, policy.weft.io/v1alpha1 TrafficPolicy, security.weft.io/v1alpha1 PeerAuthentication, security.weft.io/v1alpha1 AuthorizationPolicy',
  ], 'files in the order given, not alphabetical')
})

t.test('an EndpointSlice of an unknown Service is accepted (and unused)', async (t) => {
  t.same(errorsOf(y`
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: { name: gone-1, namespace: shop, labels: { kubernetes.io/service-name: gone } }
    addressType: IPv4
    endpoints: []
  `), [])
  t.same(errorsOf(y`
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata: { name: x-1, namespace: shop }
    addressType: IPv4
    endpoints: []
  `), ['r.yaml:3:11: EndpointSlice shop/x-1: metadata: missing required field "labels"'])
})

t.test('directories: *.yaml, *.yml and *.json in name order, not recursive, dot-files skipped', async (t) => {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'b-routes.yml'), route('    - backendRefs: [{ name: reviews, port: 9080 }]\n'))
  writeFileSync(join(dir, 'a-services.yaml'), SERVICES)
  writeFileSync(join(dir, 'notes.txt'), 'not yaml: [')
  writeFileSync(join(dir, '.hidden.yaml'), 'not: [valid')
  mkdirSync(join(dir, 'sub'))
  writeFileSync(join(dir, 'sub', 'x.yaml'), 'not: [valid')
  writeFileSync(join(dir, 'c.json'), JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'c', namespace: 'shop' }, spec: { ports: [{ port: 80 }] } }))
  // ConfigMap volume layout: the visible files are symlinks into "..data"
  mkdirSync(join(dir, '..data'))
  writeFileSync(join(dir, '..data', 'd.yaml'), 'apiVersion: v1\nkind: Service\nmetadata: { name: d, namespace: shop }\nspec: { ports: [{ port: 80 }] }\n')
  symlinkSync(join('..data', 'd.yaml'), join(dir, 'd.yaml'))
  const r = await loadResources([dir])
  t.ok(r.ok, r.ok ? '' : r.errors.map(formatConfigError).join('\n') + '\n')
  t.same(r.resources.files.map((f) => f.slice(dir.length + 1)), ['a-services.yaml', 'b-routes.yml', 'c.json', 'd.yaml'])
  t.same(r.resources.services.map((s) => s.id), ['shop/reviews', 'shop/reviews-v2', 'shop/c', 'shop/d'])

  const empty = join(dir, 'sub2')
  mkdirSync(empty)
  const missing = join(dir, 'missing.yaml')
  const r2 = await loadResources([missing, empty])
  t.same(r2.ok ? [] : r2.errors.map(formatConfigError), [
    `${missing}:0:0: cannot read the resource file: it does not exist`,
    `${empty}:0:0: the directory has no .yaml, .yml or .json files`,
  ])
})

t.test('a proxy bootstrap validated with resources may use the route table and clusters they make', async (t) => {
  const boot = y`
    listeners: [{ name: out, direction: outbound, port: 0, routeTable: outbound }]
    routeTables:
      - name: inbound
        virtualHosts: [{ name: all, domains: ["*"], routes: [{ backends: [{ cluster: "outbound|9080||reviews.shop.svc.cluster.local" }] }] }]
    clusters: [{ name: "outbound|9080||reviews-v2.shop.svc.cluster.local", endpoints: [] }]
  `
  const r = checkResourceTexts([{ file: 'svc.yaml', text: SERVICES }, { file: 'boot.yaml', text: boot }])
  t.same(r.ok ? [] : r.errors.map(formatConfigError), [
    'boot.yaml:5:20: clusters[0].name: cluster "outbound|9080||reviews-v2.shop.svc.cluster.local" is also made from the resources: rename or remove this one',
  ])
  const alone = checkResourceTexts([{ file: 'boot.yaml', text: boot }])
  t.same(alone.ok ? [] : alone.errors.map(formatConfigError), [
    'boot.yaml:1:68: listeners[0].routeTable: unknown route table "outbound" (defined: inbound)',
    'boot.yaml:4:82: routeTables[0].virtualHosts[0].routes[0].backends[0].cluster: unknown cluster "outbound|9080||reviews.shop.svc.cluster.local" (defined: outbound|9080||reviews-v2.shop.svc.cluster.local)',
  ], 'alone, a bootstrap is checked as `weft proxy --config` does')
})

t.test('the JSON Schema files are up to date with control-plane/resources/schema.ts (npm run schemas)', async (t) => {
  for (const [name, text] of schemaFiles()) {
    let onDisk = ''
    try {
      onDisk = readFileSync(join(SCHEMA_DIR, name), 'utf8')
    } catch {}
    t.ok(onDisk === text, `${name} is up to date (run npm run schemas)`)
  }
})

// ---- the real CLI ------------------------------------------------------------------------------

function weft(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [WEFT_BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.once('close', (code) => resolve({ code, stdout, stderr }))
  })
}

t.test('weft validate: the example resources are valid (exit 0)', async (t) => {
  const r = await weft(['validate', 'examples/mesh/resources', 'examples/mesh/bootstrap.yaml'])
  t.equal(r.stderr, '')
  t.equal(r.stdout, 'ok: 15 resources in 5 files (4 Service, 5 EndpointSlice, 1 HTTPRoute, 4 TrafficPolicy, 1 Bootstrap)\n')
  t.equal(r.code, 0)
})

t.test('weft validate: errors on stderr, exit 1; usage errors exit 2', async (t) => {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'svc.yaml'), SERVICES)
  writeFileSync(join(dir, 'route.yaml'), route('    - backendRefs: [{ name: ratings, port: 9080 }]\n'))
  const r = await weft(['validate', dir])
  t.equal(r.stdout, '')
  t.equal(r.stderr, [
    `${join(dir, 'route.yaml')}:7:29: HTTPRoute shop/reviews: spec.rules[0].backendRefs[0].name: unknown Service "shop/ratings" (defined: shop/reviews, shop/reviews-v2)`,
    'weft validate: 1 error',
    '',
  ].join('\n'))
  t.equal(r.code, 1)

  // A path that cannot be read is an invalid input (1), reported like any other error.
  const missing = await weft(['validate', join(dir, 'svc.yaml'), join(dir, 'nope.yaml')])
  t.equal(missing.stderr, `${join(dir, 'nope.yaml')}:0:0: cannot read the resource file: it does not exist\nweft validate: 1 error\n`)
  t.equal(missing.code, 1)

  // -o json: the same errors as data on stdout, the same exit code
  const j = await weft(['validate', '-o', 'json', dir])
  t.equal(j.code, 1)
  const doc = JSON.parse(j.stdout)
  t.equal(doc.valid, false)
  t.match(doc.errors, [{ line: 7, column: 29, text: /HTTPRoute shop\/reviews: spec\.rules\[0\]\.backendRefs\[0\]\.name: unknown Service/ }])
  const y = await weft(['validate', '-o', 'yaml', 'examples/mesh/resources'])
  t.equal(y.code, 0)
  t.match(y.stdout, /^valid: true\nsummary: /)
  t.equal((await weft(['validate', '-o', 'xml', dir])).code, 2, 'a bad -o is a usage error')

  const usage = await weft(['validate'])
  t.equal(usage.code, 2)
  t.match(usage.stderr, /error: missing required argument 'paths'/)
  const unknown = await weft(['validate', '--strict', dir])
  t.equal(unknown.code, 2)
  t.match(unknown.stderr, /error: unknown option '--strict'/)
})
