'use strict'
// Helpers and child-process programs for the tests in test/; kept out of test/ so
// that `node --test test/` runs only the test files.
// Backends under test: the local backend always, and every real server that the
// description of tests/servers/harness.py lists.

const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

const REPO = path.join(__dirname, '..', '..', '..')

let described = null
/**
 * The one description of the backends that tests/servers/harness.py writes
 * (backends.json, path in BALLOT_TEST_BACKENDS): { name: { family, url, query,
 * ttlMs, takeoverMs, liveMs, quirks, facts } }. Without the variable (no harness
 * ran), the harness's own description of memory and local.
 */
function description() {
  if (described) return described
  const file = process.env.BALLOT_TEST_BACKENDS
  const text = file
    ? fs.readFileSync(file, 'utf8')
    : execFileSync('python3', [path.join(REPO, 'tests', 'servers', 'harness.py'), 'describe'], { encoding: 'utf8' })
  described = {}
  for (const [name, b] of Object.entries(JSON.parse(text).backends)) {
    const withQuery = (url) => (b.query ? `${url}${url.includes('?') ? '&' : '?'}${b.query}` : url)
    described[name] = {
      name,
      family: b.family,
      base: b.url,
      // The URL the tests use: the base with the backend's query (Consul's lock_delay=0s).
      url: withQuery(b.url),
      /** A namespace of the test's own under the base, with the query. */
      freshUrl: (ns) => withQuery(`${b.url}/${ns}`),
      ttlMs: b.ttl_ms,
      takeoverMs: b.takeover_ms,
      liveMs: b.live_ms,
      quirks: b.quirks,
      facts: b.facts,
    }
  }
  return described
}

/** The server `name` of the description (`etcd-auth`, ...), or null; a missing one fails under BALLOT_TEST_REQUIRE_SERVERS=1. */
function server(name) {
  const b = description()[name]
  if (b) return b
  if (process.env.BALLOT_TEST_REQUIRE_SERVERS === '1') {
    throw new Error(`BALLOT_TEST_REQUIRE_SERVERS=1 but ${name} is not in the backend description: start it with tests/servers/harness.py (tests/run.sh does)`)
  }
  return null
}

// The backends every test file runs against, as in Python and C: the local backend
// always, then each server that runs.
const MAIN = ['local', 'etcd', 'zk', 'zk-tls', 'consul', 'pg']

function backends() {
  const list = []
  for (const name of MAIN) {
    const b = name === 'local' ? description().local : server(name)
    if (!b) continue
    // The local backend: a directory of this process's own under the description's.
    list.push(name === 'local' ? { ...b, url: b.freshUrl(`node-${process.pid}`) } : b)
  }
  return list
}

let counter = 0
/** A name no other test (or earlier run against the same server) uses. */
function uniqueName(what) {
  counter += 1
  return `node-test/${what}-${process.pid}-${Date.now().toString(36)}-${counter}`
}

/** Resolves with the first `event` emitted by `emitter`, or rejects after `ms`. */
function waitFor(emitter, event, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on)
      reject(new Error(`no '${event}' event within ${ms} ms`))
    }, ms)
    const on = (...args) => {
      clearTimeout(timer)
      resolve(args)
    }
    emitter.once(event, on)
  })
}

/** Rejects if `promise` does not settle within `ms`. */
function within(promise, ms, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** Asserts that `promise` rejects with a BallotError of `code`. */
async function rejectsWith(assert, promise, code) {
  const ballot = require('..')
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof ballot.BallotError, `expected a BallotError, got ${err && err.stack}`)
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`)
    return true
  })
}

function throwsWith(assert, fn, code) {
  const ballot = require('..')
  assert.throws(fn, (err) => {
    assert.ok(err instanceof ballot.BallotError, `expected a BallotError, got ${err && err.stack}`)
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`)
    return true
  })
}

/** Resolves once `pred()` holds (checked on every turn of the event loop and every 5 ms), or rejects after `ms`. */
async function waitUntil(pred, ms, what) {
  const until = Date.now() + ms
  while (!pred()) {
    if (Date.now() > until) throw new Error(`${what} not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** Resolves once `e.state` is `want`. */
const stateBecomes = (e, want, ms) => waitUntil(() => e.state === want, ms, `state ${want} (still ${e.state})`)

/**
 * Resolves once `e` emits 'leaderChanged' naming `value`. Its timer also keeps
 * the process alive meanwhile: events alone do not. Call it before the action.
 */
function leaderNamed(e, value, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      e.off('leaderChanged', on)
      reject(new Error(`no 'leaderChanged' naming ${value} within ${ms} ms`))
    }, ms)
    const on = (l) => {
      if (l && l.value.toString() === value) {
        clearTimeout(timer)
        e.off('leaderChanged', on)
        resolve(l)
      }
    }
    e.on('leaderChanged', on)
  })
}

/**
 * Campaigns `e` again and asserts that it wins within `ms` and is the leader: no
 * candidate that should have withdrawn was left queued ahead of it (it would be
 * elected first). A wait on a state where a sleep and a look at leader() would
 * race with a late withdrawal.
 */
async function winsAtOnce(assert, e, value, ms) {
  await within(e.campaign(value), ms, `${value}'s campaign (a withdrawn candidate left queued ahead of it?)`)
  assert.equal((await e.leader()).value.toString(), value)
}

module.exports = {
  description,
  server,
  backends,
  uniqueName,
  waitFor,
  within,
  waitUntil,
  stateBecomes,
  leaderNamed,
  winsAtOnce,
  rejectsWith,
  throwsWith,
}
