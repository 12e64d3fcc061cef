// The Node peer on etcd: the etcd3 npm package's Election recipe, driven like
// `ballot-bench handoff`, for the peers table of bench/run.py.
//
//   node bench/peers/etcd3_election.js ENDPOINT ROUNDS WARMUP SETTLE_MS ELECTION
//
// Two clients (two leases) in this process. The leader's campaign.resign() is
// called at t0; the other campaign's wait() resolves at t1; the old leader then
// campaigns again. Prints one JSON object. The package is installed from
// bench/peers/node/package-lock.json (npm ci), which bench/run.py does.
'use strict';
const path = require('node:path');
const { Etcd3 } = require(path.join(__dirname, 'node', 'node_modules', 'etcd3'));

const [endpoint, rounds, warmup, settleMs, name] = process.argv.slice(2);
const ROUNDS = Number(rounds), WARMUP = Number(warmup), SETTLE = Number(settleMs);
if (!endpoint || !(ROUNDS > 0) || !(WARMUP >= 0) || !(SETTLE >= 0) || !name) {
  console.error('usage: etcd3_election.js ENDPOINT ROUNDS WARMUP SETTLE_MS ELECTION');
  process.exit(2);
}
const { handoffLoop } = require(path.join(__dirname, 'handoff_loop.js'));

async function main() {
  const clients = [new Etcd3({ hosts: endpoint }), new Etcd3({ hosts: endpoint })];
  const elections = clients.map((c) => c.election(name, 10));
  const campaigns = [null, null];
  const { samples } = await handoffLoop({
    campaign: (i) => {
      const c = elections[i].campaign(`candidate-${i}`);
      c.on('error', (e) => console.error(`campaign ${i}: ${e}`));
      campaigns[i] = c;
      return c.wait().then(() => ({ i, t: process.hrtime.bigint() }));
    },
    resign: (i) => campaigns[i].resign(),
    rounds: ROUNDS,
    warmup: WARMUP,
    settleMs: SETTLE,
  });
  for (const c of campaigns) await c.resign().catch(() => {});
  for (const c of clients) c.close();
  console.log(JSON.stringify({ what: 'etcd3 (npm) Election handoff', rounds: ROUNDS, samples_ms: samples }));
}

main().then(() => process.exit(0), (e) => {
  console.error(`etcd3_election: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
