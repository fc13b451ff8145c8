// `weft init`: the rules it plans, and (as root, only inside network namespaces this test creates)
// real iptables: applied, idempotent, cleanup back to the table it found, a failing commit leaves
// nothing, and a TCP connection to an outside address really lands on the outbound port.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { planRules, runInit, type InitOptions, type Runner } from '../proxy/intercept/init.ts'

const WEFT = fileURLToPath(new URL('../cli/weft.ts', import.meta.url))
const NODE = process.execPath
const OPTS: InitOptions = {
  proxyUid: 1337, outboundPort: 15001, inboundPort: 15006,
  excludeInboundPorts: [15000], excludeOutboundPorts: [5432], excludeOutboundCidrs: ['10.0.0.0/8', 'fd00::/8'],
}

t.test('plan: jumps, exclusions, proxy uid, redirects; each CIDR in its own family\'s table', async (t) => {
  const { rules, warnings } = planRules(OPTS)
  t.same(rules.slice(0, 2), ['-A PREROUTING -p tcp -j WEFT_INBOUND', '-A OUTPUT -p tcp -j WEFT_OUTBOUND'])
  t.ok(rules.includes('-A WEFT_INBOUND -p tcp -m tcp --dport 15000 -j RETURN'))
  t.ok(rules.includes('-A WEFT_OUTBOUND -m owner --uid-owner 1337 -j RETURN'))
  t.ok(rules.includes('-A WEFT_OUTBOUND -p tcp -m tcp --dport 5432 -j RETURN'))
  t.ok(rules.includes('-A WEFT_OUTBOUND -d 10.0.0.0/8 -j RETURN'))
  t.ok(rules.includes('-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports 15001'))
  t.ok(rules.includes('-A WEFT_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006'))
  t.notOk(rules.some((r) => r.includes('fd00')))
  t.same(warnings, [])
  const six = planRules(OPTS, 6).rules
  t.ok(six.includes('-A WEFT_OUTBOUND -d fd00::/8 -j RETURN'))
  t.ok(six.includes('-A WEFT_OUTBOUND -d ::1/128 -j RETURN'))
  t.notOk(six.some((r) => r.includes('10.0.0.0/8') || r.includes('127.0.0.0/8')))
  t.ok(six.includes('-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports 15001'))
  t.match(planRules({ ...OPTS, excludeOutboundCidrs: ['not-an-ip'] }).warnings, [/not-an-ip/])
  // the uid exclusion comes before the redirect (no loop)
  t.ok(rules.indexOf('-A WEFT_OUTBOUND -m owner --uid-owner 1337 -j RETURN') < rules.indexOf('-A WEFT_OUTBOUND -p tcp -j WEFT_REDIRECT'))
})

t.test('a failing iptables-restore is a value, not a throw', async (t) => {
  const run: Runner = (cmd) => cmd === 'iptables-save'
    ? { status: 0, stdout: '*nat\nCOMMIT\n', stderr: '' }
    : { status: 1, stdout: '', stderr: 'iptables-restore: line 9 failed' }
  const r = await runInit(OPTS, {}, run)
  t.equal(r.ok, false)
  if (!r.ok) { t.equal(r.code, 'WEFT_ERR_INIT_IPTABLES'); t.match(r.message, /line 9/) }
})

t.test('the two families run at once, and a failure in one undoes the other', async (t) => {
  // IPv4's commit fails while IPv6's succeeds: IPv6's rules are removed again (all or nothing)
  const calls: string[] = []
  const saved: Record<string, string> = { 'iptables-save': '*nat\nCOMMIT\n', 'ip6tables-save': '*nat\nCOMMIT\n' }
  let inFlight = 0
  let most = 0
  const run: Runner = async (cmd, _args, input) => {
    calls.push(`${cmd}${input !== undefined && input.includes('-D ') ? ' (removal)' : ''}`)
    inFlight++
    most = Math.max(most, inFlight)
    await new Promise((r) => setImmediate(r))
    inFlight--
    if (cmd.endsWith('-save')) return { status: 0, stdout: saved[cmd] ?? '', stderr: '' }
    if (cmd === 'iptables-restore') return { status: 1, stdout: '', stderr: 'iptables-restore: line 3 failed' }
    // ip6tables-restore: applied; the table now has Weft's lines
    saved['ip6tables-save'] = ['*nat', ':WEFT_OUTBOUND - [0:0]', '-A OUTPUT -p tcp -j WEFT_OUTBOUND', 'COMMIT', ''].join('\n')
    return { status: 0, stdout: '', stderr: '' }
  }
  const r = await runInit(OPTS, {}, run)
  t.equal(r.ok, false)
  if (!r.ok) { t.equal(r.code, 'WEFT_ERR_INIT_IPTABLES'); t.match(r.message, /line 3 failed.*IPv6 rules were removed again/) }
  t.equal(most, 2, 'both tables were read at the same time')
  t.same(calls.filter((c) => c.startsWith('ip6tables-restore')), ['ip6tables-restore', 'ip6tables-restore (removal)'])
})

const isRoot = process.getuid?.() === 0
const hasIptables = spawnSync('iptables-restore', ['--version']).status === 0

t.test('real iptables in a test network namespace', { skip: !isRoot ? 'needs root (ip netns, iptables)' : !hasIptables ? 'iptables not installed (apt-get install -y iptables)' : false }, async (t) => {
  const ns = `weft-init-${randomBytes(3).toString('hex')}`
  t.equal(spawnSync('ip', ['netns', 'add', ns]).status, 0)
  t.teardown(() => { spawnSync('ip', ['netns', 'del', ns]) })
  const inNs = (args: string[], input?: string) => spawnSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', input })
  const natRules = (bin = 'iptables-save') => inNs([bin, '-t', 'nat']).stdout.split('\n').filter((l) => l.startsWith('-') || l.startsWith(':')).sort()
  const nat6 = () => natRules('ip6tables-save')
  inNs(['ip', 'link', 'set', 'lo', 'up'])
  // something of someone else's in the table: cleanup must leave it
  inNs(['iptables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'udp', '-j', 'RETURN'])
  const before = natRules()
  const before6 = nat6()
  const init = (...extra: string[]) => inNs([NODE, WEFT, 'init', '--exclude-inbound-ports', '15000', '--exclude-outbound-cidrs', '10.0.0.0/8', '--json', ...extra])
  const first = init()
  t.equal(first.status, 0, first.stderr)
  t.match(JSON.parse(first.stdout), { ok: true, action: 'applied' })
  const applied = natRules()
  t.match(JSON.parse(first.stdout), { ipv6: { action: 'applied' } })
  t.ok(nat6().includes('-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports 15001'), 'the IPv6 table too')
  t.ok(applied.includes('-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports 15001'))
  const second = init()
  t.match(JSON.parse(second.stdout), { ok: true, action: 'unchanged' })
  t.same(natRules(), applied, 'a second run changes nothing')
  t.ok(JSON.parse(second.stdout).ms < 2000)

  // traffic: a connection to an outside address lands on the outbound port
  const listener = spawn('ip', ['netns', 'exec', ns, NODE, '-e',
    "require('net').createServer((s)=>{s.end('redirected\\n')}).listen(15001,'0.0.0.0',()=>console.log('up'))"])
  t.teardown(() => { listener.kill('SIGKILL') })
  await new Promise<void>((resolve) => listener.stdout.once('data', () => resolve()))
  // a route out (a veth pair with both ends in the namespace: nothing leaves it)
  inNs(['ip', 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', 'v1'])
  inNs(['ip', 'addr', 'add', '192.0.2.10/24', 'dev', 'v0'])
  inNs(['ip', 'link', 'set', 'v0', 'up'])
  inNs(['ip', 'link', 'set', 'v1', 'up'])
  inNs(['ip', 'route', 'add', 'default', 'dev', 'v0'])
  const client = inNs([NODE, '-e', "const s=require('net').connect(80,'198.51.100.7');s.on('data',d=>{process.stdout.write(d);s.destroy()});s.on('error',e=>{console.log(e.code)})"])
  t.equal(client.stdout, 'redirected\n', client.stderr)

  const clean = init('--cleanup')
  t.match(JSON.parse(clean.stdout), { ok: true, action: 'removed' })
  t.same(natRules(), before, 'cleanup removes exactly what init added')
  t.same(nat6(), before6, 'in the IPv6 table too')
  t.match(JSON.parse(init('--cleanup').stdout), { ok: true, action: 'nothing-to-remove' })

  // a commit that fails (a port iptables refuses) leaves the table as it was
  const bad = inNs([NODE, WEFT, 'init', '--outbound-port', '15001', '--exclude-outbound-cidrs', '10.0.0.0/99', '--json'])
  t.equal(bad.status, 1)
  t.match(JSON.parse(bad.stdout), { ok: false, code: 'WEFT_ERR_INIT_IPTABLES' })
  t.same(natRules(), before, 'nothing half-applied')

  // the IPv6 commit fails after the IPv4 one succeeded: the IPv4 rules are removed again
  const bad6 = inNs([NODE, WEFT, 'init', '--outbound-port', '15001', '--exclude-outbound-cidrs', 'fd00::/200', '--json'])
  t.equal(bad6.status, 1)
  t.match(JSON.parse(bad6.stdout), { ok: false, code: 'WEFT_ERR_INIT_IPTABLES', message: /^IPv6: .*the IPv4 rules were removed again/s })
  t.same(natRules(), before, 'IPv4: nothing left')
  t.same(nat6(), before6, 'IPv6: nothing left')
})
