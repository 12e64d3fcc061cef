'use strict'
// Run with --expose-gc. Campaigns on an election object that nothing references
// afterwards (no listener either), forces garbage collections, and reports whether
// that election was collected and who leads; checks that an election that resigned
// can be collected; then closes the client, checks that the first election can be
// collected now, and does nothing else: the process must exit by itself.
const ballot = require('..')

const [url, name, ttlMs] = process.argv.slice(2)

const collected = new Set()
const registry = new FinalizationRegistry((what) => collected.add(what))

/** Collects garbage until `what` has been collected, at most `rounds` times. */
async function collect(what, rounds) {
  for (let i = 0; i < rounds && !collected.has(what); i++) {
    global.gc()
    // Finalization callbacks run from the event loop, after the collection.
    await new Promise((r) => setTimeout(r, 10))
  }
  return collected.has(what)
}

async function campaignAndForget(client) {
  const e = client.election(name)
  registry.register(e, 'election')
  const lead = await e.campaign('forgotten')
  return String(lead.term)
}

async function campaignAndResign(client) {
  const e = client.election(`${name}/resigned`)
  registry.register(e, 'resigned')
  await e.campaign('resigned')
  await e.resign()
}

async function main() {
  const client = await ballot.connect(url, { ttlMs: Number(ttlMs) })
  const term = await campaignAndForget(client)
  // As unreachable as the election: once this is collected, collections ran that
  // could have collected the election too.
  registry.register({}, 'control')
  const controlCollected = await collect('control', 100)
  const electionCollected = collected.has('election')
  const leader = await client.election(name).leader()
  // An election that resigned is let go at once, not only at client.close().
  await campaignAndResign(client)
  const resignedCollected = await collect('resigned', 100)
  await client.close()
  const collectedAfterClose = await collect('election', 100)
  const report = {
    term,
    controlCollected,
    electionCollected,
    leader: leader && { value: leader.value.toString(), term: String(leader.term) },
    resignedCollected,
    collectedAfterClose,
  }
  process.stdout.write(JSON.stringify(report) + '\n')
  // No process.exit(): the test checks that the process ends on its own.
}

main().catch((err) => {
  process.stderr.write(`gc fixture failed: ${err.code} ${err.message}\n`)
  process.exitCode = 1
})
