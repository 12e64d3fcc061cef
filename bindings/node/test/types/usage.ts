// Compiled (not run) by test/package.test.js with tsc --strict: it fails when
// index.d.ts no longer describes the API the README and the tests use.
import * as ballot from '../..'

async function example(signal: AbortSignal): Promise<bigint> {
  const client: ballot.Client = await ballot.connect('file:///tmp/ballot', { ttlMs: 10000, autoRequeue: true })
  const names: readonly ballot.EventName[] = ballot.EVENT_NAMES
  const e: ballot.Election = client.election('svc')
  e.on('elected', ({ term }) => console.log(term + 1n))
  e.on('lost', ({ reason }) => console.log(reason.toUpperCase()))
  e.on('leaderChanged', (l) => console.log(l?.value.toString(), l?.term, l?.key))
  e.on('error', (err) => console.log(err.code === 'BALLOT_NOT_LEADER', err.message))
  e.on('ended', () => {})
  const lead: ballot.Leadership = await e.campaign('node-1', { signal, timeoutMs: 1000 })
  await e.campaign(Buffer.from('x'))
  await e.proclaim(new Uint8Array([1, 2]))
  const now: ballot.Leader | null = await e.leader()
  for await (const l of e.observe()) {
    if (l === null) continue
    const v: Buffer = l.value
    console.log(v.length)
  }
  const state: ballot.ElectionState = e.state
  console.log(state, now, names, ballot.version, ballot.ERROR_CODES.length, ballot.defaultBackendUrl())
  try {
    await e.resign()
  } catch (err) {
    if (err instanceof ballot.BallotError) {
      const code: ballot.ErrorCode = err.code
      console.log(code)
    }
  }
  await e.end()
  await e.close()
  await client.close()
  return lead.term
}

export { example }
