//! `ballot-bench`: the Rust side of the benchmarks in `bench/`.
//!
//! Each subcommand runs one measurement against one running server and prints one
//! JSON object on stdout: samples in milliseconds, plus counters where the
//! measurement has them. Progress goes to stderr. `bench/run.py` starts the
//! servers through `tests/servers/harness.py`, runs these subcommands next to the
//! native clients, and writes `bench/RESULTS.md`. Nothing here asserts a time:
//! the figures are measurements, not tests.
//!
//! Every loop is bounded in count, and every wait is bounded in time.

mod counters;
mod etcd_rpc;
mod floor;
mod footprint;
mod handoff;
mod pgwire;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Command line of `ballot-bench`.
#[derive(Parser, Debug)]
#[command(name = "ballot-bench", about = "ballot benchmark driver (see bench/README.md)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// One measurement per subcommand.
#[derive(Subcommand, Debug)]
enum Cmd {
    /// Graceful handoff through ballot: resign -> the successor's campaign returns.
    Handoff(handoff::Args),
    /// The server's own notification latency (the floor under any recipe).
    Floor(floor::Args),
    /// Graceful handoff through etcd's server-side Election RPC (etcd-client crate).
    EtcdRpc(etcd_rpc::Args),
    /// RSS and OS threads of one process holding many elections.
    Footprint(footprint::Args),
}

/// Runs the subcommand on a small multi-thread runtime of its own (ballot runs its
/// work on its library-owned runtime anyway).
fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot build a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = rt.block_on(async move {
        match cli.cmd {
            Cmd::Handoff(a) => handoff::run(a).await,
            Cmd::Floor(a) => floor::run(a).await,
            Cmd::EtcdRpc(a) => etcd_rpc::run(a).await,
            Cmd::Footprint(a) => footprint::run(a).await,
        }
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    match out {
        Ok(mut v) => {
            if let Some(url) = v.get_mut("url") {
                if let Some(shown) = url.as_str().map(without_secret) {
                    *url = shown.into();
                }
            }
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `url` with its password (or its Consul token) shown as `***`: the figures are
/// written to files that are committed.
fn without_secret(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..end].rfind('@') else { return url.to_string() };
    let user = match rest[..at].split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_string(),
    };
    format!("{scheme}://{user}@{}", &rest[at + 1..])
}

/// Milliseconds of a duration, as a float.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Awaits `fut` for at most `secs` seconds; the error names `what`.
pub(crate) async fn within<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(Duration::from_secs(secs), fut).await.map_err(|_| format!("{what}: no answer within {secs} s"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_not_shown() {
        assert_eq!(super::without_secret("postgres://u:p@w@h:1/db?x=1"), "postgres://u:***@h:1/db?x=1");
        assert_eq!(super::without_secret("consul://tok@h:1/ns"), "consul://***@h:1/ns");
        assert_eq!(super::without_secret("etcd://h:1?ttl=5s&a=b@c"), "etcd://h:1?ttl=5s&a=b@c");
        assert_eq!(super::without_secret("file:///tmp/x"), "file:///tmp/x");
    }
}
