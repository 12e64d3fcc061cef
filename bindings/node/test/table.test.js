'use strict'
// The core's one table (error kinds, event kinds, options) as this package spells
// it: every code, event name and option key equals the table read from the native
// addon, spelt by Node's rules, in the code and in index.d.ts; every option works
// without the URL; and the scenario every language runs (campaign, a successor
// waits, resign, end) reports the same set of event names.

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const ballot = require('..')
const native = require('../native.js')
const { backends, server, uniqueName, waitFor, stateBecomes, leaderNamed, rejectsWith } = require('../testlib/helpers')

const TABLE = native.table()
const DTS = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8')

// Node's spelling rules, written out here independently of the addon's.
const camel = (name) => name.replace(/_([a-z])/g, (_, c) => c.toUpperCase())
const optionKey = (o) => camel(o.name) + (o.type === 'duration' ? 'Ms' : '')
const TS_TYPE = { duration: 'number', bool: 'boolean', text: 'string', path: 'string' }

/** The quoted members of `export type NAME = | 'a' | 'b'` in index.d.ts. */
function union(name) {
  const m = new RegExp(`export type ${name} =([^]*?)\\n\\n`).exec(DTS)
  assert.ok(m, `index.d.ts has a ${name} union`)
  return [...m[1].matchAll(/'([A-Za-z_]+)'/g)].map((x) => x[1])
}

/** `key: type` members of `export interface NAME { ... }` in index.d.ts. */
function members(name) {
  const m = new RegExp(`export interface ${name} \\{([^]*?)\\n\\}`).exec(DTS)
  assert.ok(m, `index.d.ts has an interface ${name}`)
  return [...m[1].matchAll(/^ {2}(\w+)\??: ([^\n]+)$/gm)].map((x) => [x[1], x[2]])
}

// First: the warning is given once per process, and later tests listen to 'leader' too.
it("listening to the deprecated 'leader' warns once", async () => {
  const warned = new Promise((resolve) => process.once('warning', resolve))
  const c = await ballot.connect(`file://${fs.mkdtempSync(path.join(os.tmpdir(), 'ballot-node-dep-'))}`)
  try {
    const e = c.election('dep')
    e.on('leader', () => {})
    const w = await warned
    assert.equal(w.name, 'DeprecationWarning')
    assert.equal(w.code, 'BALLOT_DEP_LEADER_EVENT')
    assert.match(w.message, /'leaderChanged'/)
  } finally {
    await c.close()
  }
})

describe('the core table', () => {
  it('has stable codes in order and unique names', () => {
    for (const rows of [TABLE.errors, TABLE.events]) {
      assert.deepEqual(
        rows.map((r) => r.code),
        rows.map((_, i) => i + 1),
      )
      assert.equal(new Set(rows.map((r) => r.name)).size, rows.length)
    }
    assert.deepEqual(
      TABLE.events.map((e) => e.name),
      ['elected', 'suspended', 'reconnected', 'lost', 'resigned', 'leader_changed', 'ended', 'error'],
    )
  })

  it('gives every error code: BALLOT_ and the kind in capitals, in the code and in index.d.ts', () => {
    const want = TABLE.errors.map((e) => `BALLOT_${e.name.toUpperCase()}`)
    assert.deepEqual([...ballot.ERROR_CODES], want)
    assert.deepEqual(union('ErrorCode'), want)
  })

  it('gives every event name: lowerCamelCase, in the code and in index.d.ts', () => {
    const want = TABLE.events.map((e) => camel(e.name))
    assert.deepEqual([...ballot.EVENT_NAMES], want)
    assert.ok(want.includes('leaderChanged'))
    const declared = members('ElectionEvents').map(([k]) => k)
    assert.deepEqual(declared, [...want, 'leader'], 'ElectionEvents: every event, then the deprecated alias')
  })

  it('gives every option: lowerCamelCase, Ms after a duration, in index.d.ts with its type', () => {
    const want = TABLE.options.map((o) => [optionKey(o), TS_TYPE[o.type]])
    assert.deepEqual(members('ConnectOptions'), want)
    assert.deepEqual(
      TABLE.options.map((o) => o.name),
      [
        'ttl',
        'safety_margin',
        'connect_timeout',
        'auto_requeue',
        'username',
        'password',
        'token',
        'tls_ca',
        'tls_cert',
        'tls_key',
      ],
    )
  })
})

describe('options without the URL', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ballot-node-table-'))
  const local = `file://${dir}`

  it('are parsed by the core, which names the option in its errors', async () => {
    const c = await ballot.connect(local, { ttlMs: 3000, safetyMarginMs: 500, connectTimeoutMs: 2000, autoRequeue: false })
    await c.close()
    const refused = async (options, text) => {
      await rejectsWith(assert, ballot.connect(local, options), 'BALLOT_INVALID_ARGUMENT')
      await assert.rejects(ballot.connect(local, options), (err) => err.message.includes(text) || assert.fail(err.message))
    }
    await refused({ tll: 5 }, "unknown option 'tll'")
    await refused({ ttlMs: true }, 'ttlMs must be a number of milliseconds')
    await refused({ ttlMs: 999 }, 'option ttl must be at least 1s')
    await refused({ ttlMs: 1e300 }, 'too large')
    await refused({ autoRequeue: 1 }, 'option auto_requeue takes true or false')
    await refused({ token: 't', username: 'u' }, 'exclude each other')
    await refused({ token: 's3cret' }, 'file:// takes no credentials')
    await refused({ tlsCa: '/nonexistent/ca.pem' }, 'does not speak TLS')
    await refused({ tlsCa: 5 }, 'option tls_ca takes a file path')
  })

  it('an option the URL also gives must agree with it', async () => {
    // Neither place overrides the other: the same value in both is used, a
    // different one is refused naming the option.
    await assert.rejects(ballot.connect(`${local}?ttl=3s`, { ttlMs: 30000 }), (e) => {
      assert.equal(e.code, 'BALLOT_INVALID_ARGUMENT')
      assert.match(e.message, /ttl=3s/)
      return true
    })
    const c = await ballot.connect(`${local}?ttl=30s`, { ttlMs: 30000 })
    await c.close()
  })

  const auth = server('etcd-auth')
  const tls = server('etcd-tls')
  const acl = server('consul-acl')

  it('username and password reach etcd', { skip: !auth && 'no etcd-auth' }, async () => {
    const ns = `${auth.facts.PREFIX.replace(/\/$/, '')}/${uniqueName('ns').replaceAll('/', '-')}`
    const url = `${auth.base}/${ns}`
    await rejectsWith(assert, ballot.connect(url, { connectTimeoutMs: 5000 }), 'BALLOT_AUTH')
    const c = await ballot.connect(url, { username: auth.facts.USER, password: auth.facts.PASSWORD, ttlMs: auth.ttlMs })
    try {
      const e = c.election('svc')
      assert.ok((await e.campaign('me', { timeoutMs: auth.liveMs })).term > 0n)
      await e.resign()
    } finally {
      await c.close()
    }
  })

  it('tlsCa, tlsCert and tlsKey reach etcd', { skip: !tls && 'no etcd-tls' }, async () => {
    const c = await ballot.connect(tls.url, { tlsCa: tls.facts.CA, tlsCert: tls.facts.CERT, tlsKey: tls.facts.KEY, ttlMs: tls.ttlMs })
    try {
      const e = c.election(uniqueName('tls'))
      assert.ok((await e.campaign('me', { timeoutMs: tls.liveMs })).term > 0n)
      await e.resign()
    } finally {
      await c.close()
    }
  })

  const pg = server('pg')
  it('username, password and tlsCa reach PostgreSQL', { skip: !pg && 'no pg' }, async () => {
    const url = `${pg.facts['0_URL']}/${uniqueName('ns').replaceAll('/', '-')}` // no user, no password
    const env = { PGUSER: process.env.PGUSER, PGPASSWORD: process.env.PGPASSWORD }
    delete process.env.PGUSER
    delete process.env.PGPASSWORD
    try {
      await assert.rejects(ballot.connect(url, { username: pg.facts.USER, password: 'wr0ng-pa55word', connectTimeoutMs: 5000 }), (e) => {
        assert.equal(e.code, 'BALLOT_AUTH')
        assert.ok(!e.message.includes('wr0ng-pa55word'), e.message)
        return true
      })
      for (const [u, extra] of [[url, {}], [`${url}?sslmode=verify-full`, { tlsCa: pg.facts.CA }]]) {
        const c = await ballot.connect(u, { username: pg.facts.USER, password: pg.facts.PASSWORD, ttlMs: pg.ttlMs, ...extra })
        try {
          const e = c.election('svc')
          assert.ok((await e.campaign('me', { timeoutMs: pg.liveMs })).term > 0n)
          await e.resign()
        } finally {
          await c.close()
        }
      }
    } finally {
      for (const [k, v] of Object.entries(env)) if (v !== undefined) process.env[k] = v
    }
  })

  it('token reaches Consul', { skip: !acl && 'no consul-acl' }, async () => {
    const c = await ballot.connect(acl.url, { token: acl.facts.TOKEN, ttlMs: acl.ttlMs })
    try {
      const e = c.election(uniqueName('acl'))
      assert.ok((await e.campaign('me', { timeoutMs: acl.liveMs })).term > 0n)
      await e.resign()
    } finally {
      await c.close()
    }
  })
})

for (const backend of backends()) {
  describe(`the common scenario on ${backend.name}`, () => {
    const LIMIT = backend.liveMs

    it('campaign, a successor waits, resign, end: the same event names as every language', { timeout: LIMIT * 3 }, async () => {
      const [ca, cb] = [await ballot.connect(backend.url, { ttlMs: backend.ttlMs }), await ballot.connect(backend.url, { ttlMs: backend.ttlMs })]
      try {
        const name = uniqueName('scenario')
        const [a, b] = [ca.election(name), cb.election(name)]
        const seen = { a: [], b: [] }
        const leaderAlias = []
        for (const [who, e] of [['a', a], ['b', b]]) {
          for (const ev of ballot.EVENT_NAMES) e.on(ev, () => seen[who].push(ev))
        }
        a.on('leader', (l) => leaderAlias.push(l))
        const aNamed = leaderNamed(a, 'a', LIMIT)
        await a.campaign('a', { timeoutMs: LIMIT })
        await aNamed
        const bNamed = leaderNamed(b, 'b', LIMIT)
        const bWins = b.campaign('b', { timeoutMs: LIMIT })
        await stateBecomes(b, 'campaigning', LIMIT)
        const resigned = waitFor(a, 'resigned', LIMIT)
        await a.resign()
        await resigned
        await bWins
        await bNamed
        const ended = [waitFor(a, 'ended', LIMIT), waitFor(b, 'ended', LIMIT)]
        await b.end()
        await Promise.all(ended)
        const all = new Set([...seen.a, ...seen.b])
        assert.deepEqual([...all].sort(), ['elected', 'ended', 'leaderChanged', 'resigned'], JSON.stringify(seen))
        for (const who of ['a', 'b']) assert.equal(seen[who].at(-1), 'ended', `${who}: nothing follows ended`)
        // The deprecated 'leader' still fires, with the same leaders.
        assert.equal(leaderAlias.length, seen.a.filter((x) => x === 'leaderChanged').length)
      } finally {
        await ca.close()
        await cb.close()
      }
    })
  })
}

