// Peer: graceful handoff through Curator's LeaderLatch (Debian's
// libcurator-recipes-java), for bench/run.py.
//
//   java -cp <curator and zookeeper jars>:<dir> CuratorLatch HOST:PORT ROUNDS WARMUP SETTLE_MS PATH
//
// Two CuratorFrameworks (two ZooKeeper sessions) in this JVM. The leader's latch
// is closed at t0 (it deletes its node); the other latch's await() returns at t1.
// A closed latch cannot start again, so the old leader starts a new one, which
// queues behind. Prints one JSON object on stdout. Every wait is bounded.

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.retry.RetryNTimes;

public class CuratorLatch {
    public static void main(String[] args) throws Exception {
        String hosts = args[0];
        int rounds = Integer.parseInt(args[1]);
        int warmup = Integer.parseInt(args[2]);
        long settle = Long.parseLong(args[3]);
        String path = args[4];
        CuratorFramework[] cf = new CuratorFramework[2];
        for (int i = 0; i < 2; i++) {
            cf[i] = CuratorFrameworkFactory.builder().connectString(hosts).sessionTimeoutMs(10000)
                    .connectionTimeoutMs(10000).retryPolicy(new RetryNTimes(3, 100)).build();
            cf[i].start();
            if (!cf[i].blockUntilConnected(60, TimeUnit.SECONDS)) throw new IllegalStateException("connect");
        }
        LeaderLatch[] latch = new LeaderLatch[2];
        latch[0] = new LeaderLatch(cf[0], path, "candidate-0");
        latch[0].start();
        if (!latch[0].await(60, TimeUnit.SECONDS)) throw new IllegalStateException("first latch");
        latch[1] = new LeaderLatch(cf[1], path, "candidate-1");
        latch[1].start();
        int leader = 0;
        List<Double> samples = new ArrayList<>();
        for (int r = 0; r < warmup + rounds; r++) {
            Thread.sleep(settle);
            int other = 1 - leader;
            long t0 = System.nanoTime();
            latch[leader].close();
            if (!latch[other].await(60, TimeUnit.SECONDS)) throw new IllegalStateException("round " + r);
            long t1 = System.nanoTime();
            latch[leader] = new LeaderLatch(cf[leader], path, "candidate-" + leader);
            latch[leader].start();
            leader = other;
            if (r >= warmup) samples.add((t1 - t0) / 1e6);
            if ((r + 1) % 50 == 0) System.err.println("curator: " + (r + 1) + "/" + (warmup + rounds) + " rounds");
        }
        for (LeaderLatch l : latch) l.close();
        for (CuratorFramework c : cf) c.close();
        StringBuilder sb = new StringBuilder("{\"what\": \"Curator LeaderLatch handoff\", \"rounds\": " + rounds
                + ", \"samples_ms\": [");
        for (int i = 0; i < samples.size(); i++) sb.append(i == 0 ? "" : ", ").append(samples.get(i));
        System.out.println(sb.append("]}"));
    }
}
