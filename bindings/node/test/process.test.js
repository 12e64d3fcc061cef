'use strict'
// Whole processes: a leader process is SIGKILLed and another process takes over,
// and a process exits by itself after client.close().

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const { spawn } = require('node:child_process')
const path = require('node:path')
const readline = require('node:readline')
const ballot = require('..')
const { backends, uniqueName, within, stateBecomes } = require('../testlib/helpers')

const FIXTURES = path.join(__dirname, '..', 'testlib')

/** Starts a fixture; `lines` yields its stdout lines parsed as JSON. */
function start(fixture, args, nodeFlags = []) {
  const child = spawn(process.execPath, [...nodeFlags, path.join(FIXTURES, fixture), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  const rl = readline.createInterface({ input: child.stdout })
  const lines = rl[Symbol.asyncIterator]()
  const seen = []
  const nextJson = async (ms) => {
    const r = await within(lines.next(), ms, `a line from ${fixture} (stderr: ${stderr})`)
    assert.ok(!r.done, `${fixture} ended without output; stderr: ${stderr}`)
    const obj = JSON.parse(r.value)
    seen.push(obj)
    return obj
  }
  /** The first line (from now on) for which `pred` holds. */
  const lineWhere = async (pred, ms) => {
    const deadline = Date.now() + ms
    for (;;) {
      const obj = await nextJson(Math.max(1, deadline - Date.now()))
      if (pred(obj)) return obj
    }
  }
  return { child, exited, nextJson, lineWhere, seen, stderr: () => stderr }
}

for (const backend of backends()) {
  describe(`${backend.name} backend, processes`, () => {
    // The description's bounds: a takeover after the leader died, plus the start of a process.
    const LIMIT = backend.takeoverMs + backend.liveMs

    it('another process takes over when the leader process is SIGKILLed', { timeout: LIMIT * 2 }, async () => {
      const name = uniqueName('kill')
      const leader = start('leader.js', [backend.url, name, String(backend.ttlMs)])
      try {
        const won = await leader.lineWhere((l) => l.won, LIMIT)
        const client = await ballot.connect(backend.url, { ttlMs: backend.ttlMs })
        try {
          const e = client.election(name)
          const seen = await e.leader()
          assert.equal(seen.value.toString(), `child-${won.pid}`)
          const campaign = e.campaign('survivor')
          campaign.catch(() => {})
          await stateBecomes(e, 'campaigning', backend.liveMs)
          leader.child.kill('SIGKILL')
          // The kernel (local) or the session expiry (servers) frees the dead leader's
          // entry within the description's takeover bound; timing belongs to bench/.
          const lead = await within(campaign, backend.takeoverMs, 'the takeover')
          assert.ok(lead.term > BigInt(won.term), `term ${lead.term} after ${won.term}`)
          const now = await e.leader()
          assert.equal(now.value.toString(), 'survivor')
          await e.resign()
        } finally {
          await client.close()
        }
      } finally {
        leader.child.kill('SIGKILL')
        await leader.exited
      }
    })

    // Only a backend with sessions can lose a leader that is still alive; the local
    // backend's session is the process itself.
    if (backend.name !== 'local') {
      it('a stopped leader process reports suspended/lost after its session expired', { timeout: LIMIT * 2 }, async () => {
        const name = uniqueName('sigstop')
        const leader = start('leader.js', [backend.url, name, String(backend.ttlMs)])
        const client = await ballot.connect(backend.url, { ttlMs: backend.ttlMs })
        try {
          const won = await leader.lineWhere((l) => l.won, LIMIT)
          const e = client.election(name)
          const campaign = e.campaign('survivor')
          campaign.catch(() => {})
          leader.child.kill('SIGSTOP')
          // The stopped leader's session expires and this process wins.
          const lead = await within(campaign, LIMIT, 'the takeover from a stopped leader')
          assert.ok(lead.term > BigInt(won.term), `term ${lead.term} after ${won.term}`)
          leader.child.kill('SIGCONT')
          const lost = await leader.lineWhere((l) => l.event === 'lost', LIMIT)
          assert.ok(['session_lost', 'not_owner', 'deleted'].includes(lost.reason), JSON.stringify(lost))
          const events = leader.seen.filter((l) => l.event).map((l) => l.event)
          const s = events.indexOf('suspended')
          assert.ok(s === -1 || s < events.indexOf('lost'), `suspended comes before lost: ${events.join(',')}`)
          assert.ok(!events.includes('reconnected'), `a leader whose session expired must not reconnect: ${events.join(',')}`)
          assert.equal((await e.leader()).value.toString(), 'survivor')
        } finally {
          leader.child.kill('SIGKILL')
          await leader.exited
          await client.close()
        }
      })
    }

    it('an election nobody references is not garbage-collected while it leads', { timeout: LIMIT }, async () => {
      const name = uniqueName('gc')
      const p = start('gc-leader.js', [backend.url, name, String(backend.ttlMs)], ['--expose-gc'])
      try {
        const report = await p.nextJson(LIMIT)
        assert.equal(report.controlCollected, true, 'the collections ran')
        assert.equal(report.electionCollected, false, 'the leading election was collected')
        assert.deepEqual(report.leader, { value: 'forgotten', term: report.term }, 'it still leads')
        assert.equal(report.resignedCollected, true, 'an election that resigned is let go')
        assert.equal(report.collectedAfterClose, true, 'client.close() lets the election go')
        const exit = await within(p.exited, backend.liveMs, 'the exit after close()')
        assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, p.stderr())
      } finally {
        p.child.kill('SIGKILL')
      }
    })

    it('a process exits by itself after client.close()', { timeout: LIMIT }, async () => {
      const name = uniqueName('exit')
      const p = start('close-exits.js', [backend.url, name, String(backend.ttlMs)])
      try {
        const report = await p.nextJson(LIMIT)
        assert.equal(report.closed, true)
        assert.equal(report.pending, 'BALLOT_CLOSED', 'the pending campaign fails with BALLOT_CLOSED')
        assert.ok(report.observedItems >= 1, 'the observer saw the leader and then finished')
        assert.ok(report.events.includes('elected'), report.events.join(','))
        const exit = await within(p.exited, backend.liveMs, 'the exit after close()')
        assert.deepEqual({ code: exit.code, signal: exit.signal }, { code: 0, signal: null }, p.stderr())
      } finally {
        p.child.kill('SIGKILL')
      }
    })
  })
}
