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

const [url, rounds, warmup, settleMs, name] = process.argv.slice(2);
const ROUNDS = Number(rounds), WARMUP = Number(warmup), SETTLE = Number(settleMs);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const within = (p, what) => Promise.race([p, sleep(60000).then(() => { throw new Error(`${what}: no answer within 60 s`); })]);

async function main() {
  const clients = [await ballot.connect(url, { ttlMs: 10000 }), await ballot.connect(url, { ttlMs: 10000 })];
  const elections = clients.map((c) => c.election(name));
  const campaign = (i) => elections[i].campaign(`candidate-${i}`).then(() => ({ i, t: process.hrtime.bigint() }));
  await within(campaign(0), 'first campaign');
  let leader = 0;
  let pending = campaign(1);
  const samples = [];
  for (let r = 0; r < WARMUP + ROUNDS; r++) {
    await sleep(SETTLE);
    const t0 = process.hrtime.bigint();
    await within(elections[leader].resign(), 'resign');
    const won = await within(pending, 'successor campaign');
    if (won.i === leader) throw new Error('the resigned candidate won again');
    pending = campaign(leader);
    leader = won.i;
    if (r >= WARMUP) samples.push(Number(won.t - t0) / 1e6);
  }
  // The pending campaign ends with BALLOT_CLOSED when its handle closes.
  pending.catch(() => {});
  for (const e of elections) await e.close();
  for (const c of clients) await c.close();
  console.log(JSON.stringify({ what: 'ballot Node binding handoff', rounds: ROUNDS, samples_ms: samples }));
}

main().then(() => process.exit(0), (e) => { console.error(`error: ${e.message}`); process.exit(1); });
