'use strict'
// A handoff with the installed npm packages, on the local backend, that must end
// by itself: no process.exit(), so anything of ballot left holding the event loop
// makes the caller's timeout fail the test.
//
//   node handoff.js file://DIR
//
// Prints `version <require('ballot').version>`, `addon <path>` and
// `handoff term <first> -> <second>`.

const assert = require('node:assert/strict')
const path = require('node:path')
const ballot = require('ballot')

async function main() {
  const url = process.argv[2]
  console.log(`version ${ballot.version}`)
  // The addon comes from the platform package, not from the main one.
  console.log(`addon ${path.dirname(require.resolve('ballot-linux-x64-gnu'))}`)
  const a = await ballot.connect(url)
  const b = await ballot.connect(url)
  const ea = a.election('dist-handoff')
  const eb = b.election('dist-handoff')
  const first = await ea.campaign('first', { timeoutMs: 60000 })
  // b sees a as the leader (observe() gives the current leader first), then campaigns.
  for await (const l of eb.observe()) {
    if (l && String(l.value) === 'first') break
  }
  const elected = eb.campaign('second', { timeoutMs: 60000 })
  await ea.resign()
  const second = await elected
  assert.ok(second.term > first.term, `${second.term} > ${first.term}`)
  const now = await ea.leader()
  assert.equal(String(now.value), 'second')
  assert.equal(now.term, second.term)
  await eb.resign()
  await a.close()
  await b.close()
  console.log(`handoff term ${first.term} -> ${second.term}`)
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
