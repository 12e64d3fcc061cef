// The graceful-handoff loop shared by the Node drivers of bench/run.py
// (handoff.js for ballot's binding, etcd3_election.js for the etcd3 package).
//
// Two candidates. Each round the leader resigns at t0 and the other candidate's
// pending campaign resolves at t1; the old leader then campaigns again at the back.
'use strict';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Rejects with a message naming `what` when `p` takes longer than 60 s. */
const within = (p, what) => Promise.race([p, sleep(60000).then(() => { throw new Error(`${what}: no answer within 60 s`); })]);

/**
 * Runs `warmup + rounds` handoffs and returns the timed ones in milliseconds.
 * `campaign(i)` starts candidate i's campaign and resolves with
 * `{ i, t: process.hrtime.bigint() }` when it leads; `resign(i)` makes it step down.
 */
async function handoffLoop({ campaign, resign, rounds, warmup, settleMs }) {
  await within(campaign(0), 'first campaign');
  let leader = 0;
  let pending = campaign(1);
  const samples = [];
  for (let r = 0; r < warmup + rounds; r++) {
    await sleep(settleMs);
    const t0 = process.hrtime.bigint();
    await within(resign(leader), 'resign');
    const won = await within(pending, 'successor campaign');
    if (won.i === leader) throw new Error('the resigned candidate won again');
    pending = campaign(leader);
    leader = won.i;
    if (r >= warmup) samples.push(Number(won.t - t0) / 1e6);
  }
  return { samples, pending };
}

module.exports = { handoffLoop, sleep, within };
