'use strict'
// ballot's log records reach a Node program through setLogger, and BALLOT_LOG
// prints them to stderr.

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const ballot = require('..')
const { description, waitUntil, throwsWith } = require('../testlib/helpers')

const LIMIT = description().memory.liveMs

describe('logging', () => {
  it('hands state changes to the logger, with backend and election, and no value', { timeout: LIMIT * 2 }, async () => {
    const records = []
    ballot.setLogger((r) => records.push(r), { level: 'debug' })
    const c = await ballot.connect(`memory://nodelog-${process.pid}`)
    try {
      const e = c.election('svc')
      const lead = await e.campaign('value-that-must-not-be-logged')
      await e.resign()
      const find = (level, message) =>
        records.find((r) => r.level === level && r.message === message && r.election === 'svc')
      await waitUntil(() => find('info', `elected term=${lead.term}`), LIMIT, 'the elected record')
      await waitUntil(() => find('debug', 'state idle -> campaigning'), LIMIT, 'the state record')
      await waitUntil(() => find('info', 'resigned'), LIMIT, 'the resigned record')
      assert.equal(find('info', 'resigned').backend, 'memory')
      assert.ok(records.every((r) => !r.message.includes('value-that-must-not-be-logged')))
    } finally {
      await c.close()
      ballot.setLogger(null)
    }
  })

  it('refuses what is not a logger or a level', () => {
    throwsWith(assert, () => ballot.setLogger('console'), 'BALLOT_INVALID_ARGUMENT')
    throwsWith(assert, () => ballot.setLogger(() => {}, { level: 'loud' }), 'BALLOT_INVALID_ARGUMENT')
    throwsWith(assert, () => ballot.setLogger(() => {}, { colour: true }), 'BALLOT_INVALID_ARGUMENT')
    assert.deepEqual([...ballot.LOG_LEVELS], ['error', 'warn', 'info', 'debug', 'trace'])
  })

  it('prints records to stderr under BALLOT_LOG, and warns about a bad BALLOT_LOG', { timeout: LIMIT * 2 }, () => {
    const program = `
      const ballot = require(${JSON.stringify(require.resolve('..'))})
      ;(async () => {
        const c = await ballot.connect('memory://envlog-' + process.pid)
        const e = c.election('svc')
        await e.campaign('x')
        await e.resign()
        await c.close()
      })()`
    const run = (level) =>
      spawnSync(process.execPath, ['-e', program], { env: { ...process.env, BALLOT_LOG: level }, encoding: 'utf8', timeout: LIMIT })
    const loud = run('info')
    assert.equal(loud.status, 0, loud.stderr)
    assert.match(loud.stderr, /ballot info backend=memory election=svc: elected term=1/)
    const bad = run('loud')
    assert.equal(bad.status, 0, bad.stderr)
    assert.match(bad.stderr, /BALLOT_LOG: unknown log level "loud"/)
  })
})
