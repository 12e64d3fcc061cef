'use strict'
// ballot's metrics in Node: metricsText(), and ballot's families inside a
// prom-client registry (registerMetrics, Registry.merge), on memory://.

const { describe, it } = require('node:test')
const assert = require('node:assert/strict')
const { Registry } = require('prom-client')
const ballot = require('..')
const { description, waitUntil, throwsWith } = require('../testlib/helpers')

const LIMIT = description().memory.liveMs

/** `name{...,election="E",...} V` lines of a text exposition, as [labels text, value]. */
function lines(text, name, election) {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) && l.includes(`election="${election}"`))
    .map((l) => [l.slice(name.length, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))])
}

describe('metrics', () => {
  it('metricsText has every family, and the leader gauge follows a handoff', { timeout: LIMIT * 3 }, async () => {
    const store = `memory://nodemetrics-${process.pid}-${Date.now()}`
    const name = `svc-${Date.now()}`
    const a = await ballot.connect(store)
    const b = await ballot.connect(store)
    try {
      const ea = a.election(name)
      const eb = b.election(name)
      await ea.campaign('secret-a')
      const waiting = eb.campaign('b')
      await waitUntil(() => eb.state === 'campaigning', LIMIT, 'b campaigns')
      const text = ballot.metricsText()
      for (const [n, t] of [
        ['ballot_leader', 'gauge'],
        ['ballot_campaigning', 'gauge'],
        ['ballot_elections_won_total', 'counter'],
        ['ballot_leadership_lost_total', 'counter'],
        ['ballot_handoff_wait_seconds', 'histogram'],
        ['ballot_session_healthy', 'gauge'],
        ['ballot_session_deadline_seconds', 'gauge'],
        ['ballot_keepalive_rtt_seconds', 'histogram'],
      ]) {
        assert.ok(text.includes(`# TYPE ${n} ${t}\n`), `${n} ${t}`)
      }
      assert.ok(!text.includes('secret-a'))
      assert.deepEqual(lines(text, 'ballot_leader', name).map((l) => l[1]).sort(), [0, 1])
      const snap = ballot.metricsSnapshot()
      const lead = snap.find((f) => f.name === 'ballot_leader').samples.filter((s) => s.labels.election === name)
      const aClient = lead.find((s) => s.value === 1).labels.client
      a.expireSession()
      await waiting
      await waitUntil(
        () => {
          const now = ballot.metricsSnapshot().find((f) => f.name === 'ballot_leader').samples
          const leaders = now.filter((s) => s.labels.election === name && s.value === 1)
          return leaders.length === 1 && leaders[0].labels.client !== aClient
        },
        LIMIT,
        "b's ballot_leader is 1",
      )
      const lost = ballot
        .metricsSnapshot()
        .find((f) => f.name === 'ballot_leadership_lost_total')
        .samples.filter((s) => s.labels.election === name && s.labels.client === aClient)
      assert.deepEqual(Object.fromEntries(lost.map((s) => [s.labels.reason, s.value])), {
        session_lost: 1,
        deleted: 0,
        not_owner: 0,
      })
    } finally {
      await a.close()
      await b.close()
    }
    assert.deepEqual(lines(ballot.metricsText(), 'ballot_leader', name), [])
  })

  it('a prom-client registry includes ballot’s families, also merged', { timeout: LIMIT * 2 }, async () => {
    const name = `svc-prom-${Date.now()}`
    const c = await ballot.connect(`memory://nodeprom-${process.pid}-${Date.now()}`)
    try {
      await c.election(name).campaign('v')
      const mine = new Registry()
      ballot.registerMetrics(mine)
      const text = await mine.metrics()
      assert.deepEqual(lines(text, 'ballot_leader', name).map((l) => l[1]), [1])
      assert.deepEqual(lines(text, 'ballot_elections_won_total', name).map((l) => l[1]), [1])
      const buckets = lines(text, 'ballot_handoff_wait_seconds_bucket', name)
      assert.ok(buckets.at(-1)[0].includes('le="+Inf"'), buckets.at(-1)[0])
      assert.equal(buckets.at(-1)[1], 1)
      assert.deepEqual(lines(text, 'ballot_handoff_wait_seconds_count', name).map((l) => l[1]), [1])
      // The registry's JSON form has the same values.
      const json = await mine.getMetricsAsJSON()
      const leader = json.find((m) => m.name === 'ballot_leader')
      assert.deepEqual(leader.values.filter((v) => v.labels.election === name).map((v) => v.value), [1])
      // Merged with an application's registry.
      const app = new Registry()
      new (require('prom-client').Counter)({ name: 'app_requests_total', help: 'requests', registers: [app] })
      const merged = Registry.merge([app, mine])
      const all = await merged.metrics()
      assert.ok(all.includes('# TYPE app_requests_total counter'))
      assert.deepEqual(lines(all, 'ballot_leader', name).map((l) => l[1]), [1])
    } finally {
      await c.close()
    }
  })

  it('registerMetrics refuses what is not a registry', () => {
    throwsWith(assert, () => ballot.registerMetrics({}), 'BALLOT_INVALID_ARGUMENT')
    throwsWith(assert, () => ballot.registerMetrics(null), 'BALLOT_INVALID_ARGUMENT')
  })
})
