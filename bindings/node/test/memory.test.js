'use strict'
// A user's own test of leader logic on memory:// (in-process, no server): elect,
// hand off, end, and a session that expires.

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const ballot = require('..')
const { description, waitFor, within, stateBecomes, rejectsWith, throwsWith } = require('../testlib/helpers')

// The description's liveness bound; nothing here waits on a server.
const LIMIT = description().memory.liveMs

let counter = 0
/** A store of this test's own: clients with the same URL share its elections. */
const store = () => `memory://node-${process.pid}-${++counter}`

describe('memory:// backend', () => {
  it('elects, hands off and ends', { timeout: LIMIT * 2 }, async () => {
    const url = store()
    const a = await ballot.connect(url)
    const b = await ballot.connect(url)
    try {
      const ea = a.election('svc')
      const eb = b.election('svc')
      const first = await within(ea.campaign('a'), LIMIT, 'a elected')
      assert.equal(first.term, 1n)
      const second = eb.campaign('b')
      await stateBecomes(eb, 'campaigning', LIMIT)
      await ea.resign()
      const l2 = await within(second, LIMIT, 'b elected')
      assert.equal(l2.term, 2n)
      assert.equal((await ea.leader()).value.toString(), 'b')
      const ended = waitFor(eb, 'ended', LIMIT)
      await ea.end()
      await ended
      assert.equal(eb.state, 'ended')
      await rejectsWith(assert, ea.campaign('again'), 'BALLOT_ENDED')
    } finally {
      await a.close()
      await b.close()
    }
  })

  it('an expired session gives lost and the next candidate wins', { timeout: LIMIT * 2 }, async () => {
    const url = store()
    // Without autoRequeue a does not join again after the expiry, so b wins
    // whether or not it had joined by then ('campaigning' comes before the join).
    const a = await ballot.connect(url, { autoRequeue: false })
    const b = await ballot.connect(url)
    try {
      const ea = a.election('svc')
      const eb = b.election('svc')
      const lost = waitFor(ea, 'lost', LIMIT)
      const first = await within(ea.campaign('a'), LIMIT, 'a elected')
      const second = eb.campaign('b')
      await stateBecomes(eb, 'campaigning', LIMIT)
      a.expireSession()
      assert.notEqual(ea.state, 'leader')
      const l2 = await within(second, LIMIT, 'b elected')
      assert.equal(l2.term, first.term + 1n)
      const [info] = await lost
      assert.equal(info.reason, 'session_lost')
      await stateBecomes(ea, 'idle', LIMIT)
    } finally {
      await a.close()
      await b.close()
    }
  })

  it('refuses what makes no sense for memory:// clearly', async () => {
    for (const url of ['memory://', 'memory://x:1', 'memory://x?ttl=5s', 'memory://u:pw@x']) {
      await rejectsWith(assert, ballot.connect(url), 'BALLOT_INVALID_ARGUMENT')
    }
    const other = await ballot.connect(`file://${require('node:os').tmpdir()}/ballot-node-memory-${process.pid}`)
    try {
      throwsWith(assert, () => other.expireSession(), 'BALLOT_INVALID_ARGUMENT')
    } finally {
      await other.close()
    }
  })
})
