// ballot's Node binding: the same graceful handoff as `ballot-bench handoff`, for
// the surfaces table of bench/run.py.
//
//   node bench/peers/handoff.js URL ROUNDS WARMUP SETTLE_MS ELECTION
//
// Two clients (two sessions) in this process. The leader's resign() is called at
// t0; the other candidate's campaign() promise resolves at t1; the old leader
// campaigns again once the successor has won. Prints one JSON object.
'use strict';
const path = require('node:path');
const ballot = require(path.join(__dirname, '..', '..', 'bindings', 'node'));

const { handoffLoop } = require(path.join(__dirname, 'handoff_loop.js'));

const [url, rounds, warmup, settleMs, name] = process.argv.slice(2);

async function main() {
  const clients = [await ballot.connect(url, { ttlMs: 10000 }), await ballot.connect(url, { ttlMs: 10000 })];
  const elections = clients.map((c) => c.election(name));
  const { samples, pending } = await handoffLoop({
    campaign: (i) => elections[i].campaign(`candidate-${i}`).then(() => ({ i, t: process.hrtime.bigint() })),
    resign: (i) => elections[i].resign(),
    rounds: Number(rounds),
    warmup: Number(warmup),
    settleMs: Number(settleMs),
  });
  // The pending campaign ends with BALLOT_CLOSED when its handle closes.
  pending.catch(() => {});
  for (const e of elections) await e.close();
  for (const c of clients) await c.close();
  console.log(JSON.stringify({ what: 'ballot Node binding handoff', rounds: Number(rounds), samples_ms: samples }));
}

main().then(() => process.exit(0), (e) => { console.error(`error: ${e.message}`); process.exit(1); });
