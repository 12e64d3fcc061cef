'use strict'
// Helpers and child-process programs for the tests in test/; kept out of test/ so
// that `node --test test/` runs only the test files.
// Backends under test: the local backend always, and every real server whose URL
// tests/run.sh (through tests/servers/harness.py) put in the environment.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const REAL = [
  // [name, env var, session TTL in ms (Consul's minimum is 10 s), takeover bound in ms]
  // The takeover bound is a generous liveness limit for a SIGKILLed leader's
  // successor: the session must expire first (Consul may take up to twice the TTL,
  // then holds the lock for its lock-delay, 15 s by default). Timing is measured in
  // bench/, not here.
  ['etcd', 'BALLOT_TEST_ETCD', 2000, 2000 + 5000],
  // ZooKeeper negotiates sessions of 2..20 ticks; the harness's tick is 2 s.
  ['zookeeper', 'BALLOT_TEST_ZK', 4000, 4000 + 5000],
  ['consul', 'BALLOT_TEST_CONSUL', 10000, 2 * 10000 + 15000 + 5000],
]

function backends() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ballot-node-test-'))
  // The kernel frees a dead local leader's lock at once.
  const list = [{ name: 'local', url: `file://${dir}`, ttlMs: 2000, takeoverMs: 5000 }]
  const require = process.env.BALLOT_TEST_REQUIRE_SERVERS === '1'
  for (const [name, env, ttlMs, takeoverMs] of REAL) {
    const url = process.env[env]
    if (url) list.push({ name, url, ttlMs, takeoverMs })
    else if (require) throw new Error(`BALLOT_TEST_REQUIRE_SERVERS=1 but ${env} is not set: start the ${name} server with tests/servers/harness.py (tests/run.sh does)`)
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

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

module.exports = { backends, uniqueName, waitFor, within, rejectsWith, throwsWith, sleep }
