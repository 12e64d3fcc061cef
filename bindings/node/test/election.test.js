'use strict'
// Behaviour of the Node API against every backend in the environment (see
// helpers.js): handoff, proclaim, observe order, events, end, abort, timeouts and
// errors.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const ballot = require('..')
const { backends, uniqueName, waitFor, within, waitUntil, stateBecomes, leaderNamed, winsAtOnce, rejectsWith } = require('../testlib/helpers')

// A promise that is awaited later, with a no-op handler attached now so that its
// rejection does not count as unhandled in the meantime.
const handled = (p) => {
  p.catch(() => {})
  return p
}

for (const backend of backends()) {
  describe(`${backend.name} backend`, () => {
    const clients = []
    const connect = async () => {
      const c = await ballot.connect(backend.url, { ttlMs: backend.ttlMs })
      clients.push(c)
      return c
    }
    // The description's liveness bound for anything that waits on no expiry.
    const LIMIT = backend.liveMs
    let a, b

    before(async () => {
      a = await connect()
      b = await connect()
    })
    after(async () => {
      for (const c of clients) await c.close()
    })

    it('hands leadership over on resign, with a higher term', { timeout: LIMIT * 2 }, async () => {
      const name = uniqueName('handoff')
      const e1 = a.election(name)
      const e2 = b.election(name)
      const l1 = await within(e1.campaign('one'), LIMIT, 'first campaign')
      assert.equal(typeof l1.term, 'bigint')
      assert.equal(l1.value.toString(), 'one')
      assert.equal(e1.state, 'leader')
      const second = e2.campaign(Buffer.from('two'))
      await stateBecomes(e2, 'campaigning', LIMIT)
      await e1.resign()
      const l2 = await within(second, LIMIT, 'second campaign')
      assert.ok(l2.term > l1.term, `term ${l2.term} after ${l1.term}`)
      const now = await e1.leader()
      assert.equal(now.value.toString(), 'two')
      assert.equal(now.term, l2.term)
      assert.equal(now.key, l2.key)
      await e2.resign()
    })

    it('proclaim changes the value and keeps the term', { timeout: LIMIT }, async () => {
      const e = a.election(uniqueName('proclaim'))
      const lead = await e.campaign('v1')
      await e.proclaim('v2')
      let now = await e.leader()
      assert.equal(now.value.toString(), 'v2')
      assert.equal(now.term, lead.term)
      await e.proclaim(new Uint8Array([0, 255, 1]))
      now = await e.leader()
      assert.deepEqual([...now.value], [0, 255, 1])
      assert.equal(now.term, lead.term)
      await e.resign()
      assert.equal(await e.leader(), null)
    })

    it('observe yields the current leader first, then changes in order, and ends on end()', { timeout: LIMIT * 3 }, async () => {
      const name = uniqueName('observe')
      const watcher = b.election(name)
      const e1 = a.election(name)
      const e2 = b.election(name)
      const seen = []
      const progress = new EventTarget()
      const loop = (async () => {
        for await (const l of watcher.observe()) {
          seen.push(l && { value: l.value.toString(), term: l.term })
          progress.dispatchEvent(new Event('step'))
        }
        return 'finished'
      })()
      const until = (pred, what) =>
        waitUntil(pred, LIMIT, `observe showing ${what}; saw ${JSON.stringify(seen, (k, v) => (typeof v === 'bigint' ? Number(v) : v))}`)
      await until(() => seen.length >= 1, 'the first item')
      assert.equal(seen[0], null, 'nobody leads a fresh election')
      const l1 = await e1.campaign('first')
      await until(() => seen.some((s) => s && s.value === 'first'), 'the first leader')
      await e1.proclaim('first v2')
      await until(() => seen.some((s) => s && s.value === 'first v2'), 'the proclaimed value')
      await e1.resign()
      const l2 = await within(e2.campaign('second'), LIMIT, 'second campaign')
      await until(() => seen.some((s) => s && s.value === 'second'), 'the second leader')
      await e2.end()
      assert.equal(await within(loop, LIMIT, 'the observe loop'), 'finished')
      const leaders = seen.filter(Boolean)
      assert.deepEqual(
        leaders.map((s) => s.value),
        ['first', 'first v2', 'second'],
      )
      assert.deepEqual(
        leaders.map((s) => s.term),
        [l1.term, l1.term, l2.term],
      )
      assert.ok(l2.term > l1.term)
    })

    it('breaking out of observe stops it', { timeout: LIMIT }, async () => {
      const e = a.election(uniqueName('observe-break'))
      let n = 0
      for await (const l of e.observe()) {
        assert.equal(l, null)
        n += 1
        break
      }
      assert.equal(n, 1)
    })

    it('emits elected, leaderChanged, resigned and ended in order', { timeout: LIMIT * 2 }, async () => {
      const name = uniqueName('events')
      const e = a.election(name)
      const log = []
      e.on('elected', ({ term }) => log.push(['elected', term]))
      e.on('leaderChanged', (l) => log.push(['leaderChanged', l && l.value.toString()]))
      e.on('resigned', () => log.push(['resigned']))
      e.on('ended', () => log.push(['ended']))
      const elected = waitFor(e, 'elected', LIMIT)
      // A watch may coalesce a leader that comes and goes quickly, so the test
      // resigns only once the 'leaderChanged' event has named this candidate.
      const sawMe = leaderNamed(e, 'me', LIMIT)
      const lead = await e.campaign('me')
      const [{ term }] = await elected
      assert.equal(term, lead.term)
      await sawMe
      const resigned = waitFor(e, 'resigned', LIMIT)
      await e.resign()
      await resigned
      const ended = waitFor(e, 'ended', LIMIT)
      await b.election(name).end()
      await ended
      assert.equal(e.state, 'ended')
      const kinds = log.map((x) => x[0])
      assert.ok(kinds.indexOf('elected') < kinds.indexOf('resigned'), kinds.join(','))
      assert.ok(kinds.indexOf('resigned') < kinds.indexOf('ended'), kinds.join(','))
      assert.equal(kinds[kinds.length - 1], 'ended', 'nothing follows ended')
      assert.ok(log.some((x) => x[0] === 'leaderChanged' && x[1] === 'me'), JSON.stringify(log.map((x) => x.map(String))))
    })

    it('end() ends the election for every participant', { timeout: LIMIT * 2 }, async () => {
      const name = uniqueName('end')
      const leader = a.election(name)
      const waiter = b.election(name)
      await leader.campaign('L')
      const pending = handled(waiter.campaign('W'))
      const leaderEnded = waitFor(leader, 'ended', LIMIT)
      await stateBecomes(waiter, 'campaigning', LIMIT)
      await a.election(name).end()
      await leaderEnded
      await rejectsWith(assert, within(pending, LIMIT, 'the waiting campaign'), 'BALLOT_ENDED')
      assert.equal(leader.state, 'ended')
      await rejectsWith(assert, leader.campaign('again'), 'BALLOT_ENDED')
      await rejectsWith(assert, leader.proclaim('x'), 'BALLOT_ENDED')
      // The name can be used again by new handles, and terms keep increasing.
      const fresh = await b.election(name).campaign('new')
      assert.ok(typeof fresh.term === 'bigint' && fresh.term > 0n)
    })

    it('an AbortSignal withdraws a waiting campaign and leaves no entry', { timeout: LIMIT * 2 }, async () => {
      const name = uniqueName('abort')
      const holder = a.election(name)
      const l1 = await holder.campaign('holder')
      const e = b.election(name)
      const ac = new AbortController()
      const pending = e.campaign('waiter', { signal: ac.signal })
      await stateBecomes(e, 'campaigning', LIMIT)
      ac.abort(new Error('changed my mind'))
      await assert.rejects(pending, (err) => {
        assert.equal(err.code, 'BALLOT_CANCELLED')
        assert.equal(err.cause.message, 'changed my mind')
        return true
      })
      assert.equal(e.state, 'idle')
      await holder.resign()
      // The withdrawn candidate must not win: the holder wins again at once.
      await winsAtOnce(assert, holder, 'holder again', LIMIT)
      await holder.resign()
      // The handle can campaign again afterwards.
      const l2 = await within(e.campaign('again'), LIMIT, 'campaign after abort')
      assert.ok(l2.term > l1.term)
      await e.resign()
      // An already aborted signal rejects at once.
      await rejectsWith(assert, e.campaign('x', { signal: AbortSignal.abort() }), 'BALLOT_CANCELLED')
      assert.equal(e.state, 'idle')
    })

    it('timeoutMs withdraws with BALLOT_TIMEOUT', { timeout: LIMIT * 2 }, async () => {
      const name = uniqueName('timeout')
      const holder = a.election(name)
      await holder.campaign('holder')
      const e = b.election(name)
      await rejectsWith(assert, e.campaign('late', { timeoutMs: 300 }), 'BALLOT_TIMEOUT')
      assert.equal(e.state, 'idle')
      await holder.resign()
      // The timed-out candidate left nothing behind: the holder wins again at once.
      await winsAtOnce(assert, holder, 'holder again', LIMIT)
      await holder.resign()
    })

    it('resign() withdraws a waiting campaign with BALLOT_CANCELLED', { timeout: LIMIT * 2 }, async () => {
      const name = uniqueName('resign-waiting')
      const holder = a.election(name)
      await holder.campaign('holder')
      const e = b.election(name)
      const pending = handled(e.campaign('waiter'))
      await stateBecomes(e, 'campaigning', LIMIT)
      await e.resign()
      await rejectsWith(assert, pending, 'BALLOT_CANCELLED')
      await holder.resign()
    })

    it('a throwing listener is reported through error and the election keeps working', { timeout: LIMIT }, async () => {
      const e = a.election(uniqueName('throwing'))
      const boom = new Error('listener bug')
      e.on('elected', () => {
        throw boom
      })
      const reported = waitFor(e, 'error', LIMIT)
      await e.campaign('x')
      const [err] = await reported
      assert.equal(err, boom)
      await e.proclaim('still leading')
      assert.equal((await e.leader()).value.toString(), 'still leading')
      await e.resign()
    })

    it('a throwing listener without an error listener becomes a warning, not a crash', { timeout: LIMIT }, async () => {
      const e = a.election(uniqueName('throwing-no-error'))
      e.on('elected', () => {
        throw new Error('unhandled listener bug')
      })
      const warned = new Promise((resolve) => {
        const on = (w) => {
          if (w.name === 'BallotWarning') {
            process.off('warning', on)
            resolve(w)
          }
        }
        process.on('warning', on)
      })
      await e.campaign('x')
      const w = await within(warned, LIMIT, 'the warning')
      assert.match(w.message, /unhandled listener bug/)
      await e.resign()
    })

    it('bad input fails with the right error code', { timeout: LIMIT }, async () => {
      const { throwsWith } = require('../testlib/helpers')
      throwsWith(assert, () => a.election('a//b'), 'BALLOT_INVALID_ARGUMENT')
      throwsWith(assert, () => a.election(''), 'BALLOT_INVALID_ARGUMENT')
      throwsWith(assert, () => a.election('x'.repeat(257)), 'BALLOT_INVALID_ARGUMENT')
      throwsWith(assert, () => a.election('nul\0byte'), 'BALLOT_INVALID_ARGUMENT')
      throwsWith(assert, () => a.election(42), 'BALLOT_INVALID_ARGUMENT')
      const e = a.election(uniqueName('bad-input'))
      await rejectsWith(assert, e.campaign(''), 'BALLOT_INVALID_ARGUMENT')
      await rejectsWith(assert, e.campaign(42), 'BALLOT_INVALID_ARGUMENT')
      await rejectsWith(assert, e.campaign(null), 'BALLOT_INVALID_ARGUMENT')
      await rejectsWith(assert, e.campaign(Buffer.alloc(1024 * 1024 + 1, 1)), 'BALLOT_INVALID_ARGUMENT')
      await rejectsWith(assert, e.campaign('v', { timeoutMs: -1 }), 'BALLOT_INVALID_ARGUMENT')
      await rejectsWith(assert, e.campaign('v', { timeoutMs: 1.5 }), 'BALLOT_INVALID_ARGUMENT')
      await rejectsWith(assert, e.campaign('v', { timeoutMs: '10' }), 'BALLOT_INVALID_ARGUMENT')
      await rejectsWith(assert, e.campaign('v', { signal: 'no' }), 'BALLOT_INVALID_ARGUMENT')
      await rejectsWith(assert, e.campaign('v', { timeout: 10 }), 'BALLOT_INVALID_ARGUMENT')
      await rejectsWith(assert, e.proclaim('x'), 'BALLOT_NOT_LEADER')
      await rejectsWith(assert, e.resign(), 'BALLOT_NOT_LEADER')
      await e.campaign('v')
      await rejectsWith(assert, e.campaign('again'), 'BALLOT_INVALID_ARGUMENT')
      await rejectsWith(assert, e.proclaim(''), 'BALLOT_INVALID_ARGUMENT')
      await e.close()
      await rejectsWith(assert, e.proclaim('x'), 'BALLOT_CLOSED')
      await rejectsWith(assert, e.leader(), 'BALLOT_CLOSED')
      await rejectsWith(assert, e.campaign('x'), 'BALLOT_CLOSED')
      // The closed handle resigned: nobody leads.
      assert.equal(await a.election(e.name).leader(), null)
    })

    it('a closed client refuses new work with BALLOT_CLOSED and ends its handles', { timeout: LIMIT }, async () => {
      const c = await connect()
      const e = c.election(uniqueName('closed-client'))
      await e.campaign('x')
      const pending = handled(c.election(e.name).campaign('y'))
      await c.close()
      await c.close() // idempotent
      await rejectsWith(assert, pending, 'BALLOT_CLOSED')
      assert.equal(e.state, 'closed')
      const { throwsWith } = require('../testlib/helpers')
      throwsWith(assert, () => c.election('x'), 'BALLOT_CLOSED')
      assert.equal(await a.election(e.name).leader(), null)
    })

    it('participants lists the queue in order, the leader first', { timeout: LIMIT * 3 }, async () => {
      const name = uniqueName('participants')
      const c = await connect()
      const [ea, eb, ec, reader] = [a.election(name), b.election(name), c.election(name), a.election(name)]
      assert.deepEqual(await reader.participants(), [])
      const la = await within(ea.campaign('a'), LIMIT, 'first campaign')
      const wb = handled(eb.campaign('b'))
      let list = []
      const queued = async (n, what) => {
        const until = Date.now() + LIMIT
        while ((list = await reader.participants()).length !== n || !list[0].leader) {
          if (Date.now() > until) throw new Error(`${what} not within ${LIMIT} ms: ${JSON.stringify(list)}`)
          await new Promise((resolve) => setTimeout(resolve, 20))
        }
      }
      await queued(2, 'b queued')
      const wc = handled(ec.campaign(Buffer.from([0x63, 0xff])))
      await queued(3, 'c queued')
      assert.deepEqual(list.map((p) => [p.value, p.leader]), [
        [Buffer.from('a'), true],
        [Buffer.from('b'), false],
        [Buffer.from([0x63, 0xff]), false],
      ])
      assert.ok(Buffer.isBuffer(list[0].value))
      assert.equal(list[0].key, la.key)
      assert.deepEqual(Object.keys(list[0]).sort(), ['key', 'leader', 'value'])
      await ea.resign()
      await within(wb, LIMIT, 'b wins')
      await queued(2, 'the queue moves on')
      assert.deepEqual(list.map((p) => [p.value.toString('latin1'), p.leader]), [['b', true], ['c\xff', false]])
      await reader.end()
      await rejectsWith(assert, reader.participants(), 'BALLOT_ENDED')
      await rejectsWith(assert, wc, 'BALLOT_ENDED')
      const closed = a.election(name)
      await closed.close()
      await rejectsWith(assert, closed.participants(), 'BALLOT_CLOSED')
    })
  })
}

describe('connect', () => {
  it('rejects bad URLs and options with BALLOT_INVALID_ARGUMENT', async () => {
    await rejectsWith(assert, ballot.connect('nope://x'), 'BALLOT_INVALID_ARGUMENT')
    await rejectsWith(assert, ballot.connect('file:///tmp/x?bogus=1'), 'BALLOT_INVALID_ARGUMENT')
    await rejectsWith(assert, ballot.connect('file:///tmp/x?ttl=10'), 'BALLOT_INVALID_ARGUMENT')
    await rejectsWith(assert, ballot.connect(42), 'BALLOT_INVALID_ARGUMENT')
    await rejectsWith(assert, ballot.connect('file:///tmp/x', { ttl: 5 }), 'BALLOT_INVALID_ARGUMENT')
    await rejectsWith(assert, ballot.connect('file:///tmp/x', { ttlMs: 500 }), 'BALLOT_INVALID_ARGUMENT')
    await rejectsWith(assert, ballot.connect('file:///tmp/x', { ttlMs: -5 }), 'BALLOT_INVALID_ARGUMENT')
    await rejectsWith(assert, ballot.connect('file:///tmp/x', { ttlMs: 'soon' }), 'BALLOT_INVALID_ARGUMENT')
    await rejectsWith(assert, ballot.connect('file:///tmp/x', { ttlMs: 2000, safetyMarginMs: 2000 }), 'BALLOT_INVALID_ARGUMENT')
    await rejectsWith(assert, ballot.connect('file:///tmp/x', { username: 'u' }), 'BALLOT_INVALID_ARGUMENT')
    await rejectsWith(assert, ballot.connect('file:///tmp/x', 'ttl'), 'BALLOT_INVALID_ARGUMENT')
  })

  it('exposes the backend url', async () => {
    const os = require('node:os')
    const c = await ballot.connect(`file://${os.tmpdir()}/ballot-node-url-test`)
    assert.match(c.url, /^file:\/\//)
    await c.close()
  })
})
