// A Curator LeaderLatch participant driven over stdin/stdout by core/tests/zookeeper.rs.
//
//   java LatchMain CONNECT_STRING LATCH_PATH ID
//
// Prints "STARTED" once the latch has started, "LEADER" when it gains leadership and
// "NOT_LEADER" when it loses it. Reads commands, one a line:
//   leader  -> prints "LEADER_IS <id of latch.getLeader()>" (empty when there is none)
//   participants -> prints "PARTICIPANTS <id>[*],<id>[*],..." from latch.getParticipants(),
//              in Curator's order; `*` marks the one Curator says leads
//   close   -> closes the latch (deletes its node) and prints "CLOSED"
//   exit    -> closes the client and exits
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.retry.RetryNTimes;

public class LatchMain {
    private static synchronized void say(String line) {
        System.out.println(line);
        System.out.flush();
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: LatchMain CONNECT_STRING LATCH_PATH ID");
            System.exit(2);
        }
        CuratorFramework client = CuratorFrameworkFactory.builder()
                .connectString(args[0])
                .sessionTimeoutMs(4000)
                .connectionTimeoutMs(4000)
                .retryPolicy(new RetryNTimes(20, 200))
                .build();
        client.start();
        LeaderLatch latch = new LeaderLatch(client, args[1], args[2]);
        latch.addListener(new LeaderLatchListener() {
            @Override
            public void isLeader() {
                say("LEADER");
            }

            @Override
            public void notLeader() {
                say("NOT_LEADER");
            }
        });
        latch.start();
        say("STARTED");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            switch (line.trim()) {
                case "leader":
                    say("LEADER_IS " + latch.getLeader().getId());
                    break;
                case "participants": {
                    StringBuilder sb = new StringBuilder("PARTICIPANTS ");
                    boolean first = true;
                    for (org.apache.curator.framework.recipes.leader.Participant p : latch.getParticipants()) {
                        if (!first) {
                            sb.append(',');
                        }
                        first = false;
                        sb.append(p.getId()).append(p.isLeader() ? "*" : "");
                    }
                    say(sb.toString());
                    break;
                }
                case "close":
                    latch.close();
                    say("CLOSED");
                    break;
                case "exit":
                    client.close();
                    say("EXITED");
                    return;
                default:
                    say("UNKNOWN " + line);
            }
        }
        client.close();
    }
}
