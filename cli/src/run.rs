//! `ballot run`: run a command only while leader.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::ExitStatus;
use std::time::Duration;

use ballot::{Client, ErrorKind, Event};
use futures_util::StreamExt;

use crate::{exit, terminated, CliResult, Fail};

enum Outcome {
    Exited(ExitStatus),
    Lost(String),
    Ended,
    Signal(i32),
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn status_code(s: ExitStatus) -> u8 {
    match (s.code(), s.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => (128 + sig) as u8,
        _ => exit::ERROR,
    }
}

fn spawn(cmd: &[String], election: &str, term: u64, key: &str) -> Result<tokio::process::Child, Fail> {
    let mut c = std::process::Command::new(&cmd[0]);
    c.args(&cmd[1..]).env("BALLOT_TERM", term.to_string()).env("BALLOT_ELECTION", election).env("BALLOT_KEY", key);
    // SAFETY: only async-signal-safe calls between fork and exec.
    let parent = unsafe { libc::getpid() };
    unsafe {
        c.pre_exec(move || {
            // Own process group, so a stop reaches the command's children too.
            libc::setpgid(0, 0);
            // If this `ballot run` dies (even by SIGKILL), the command dies with it:
            // it must never run without a leader watching over it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(exit::LOST as i32);
            }
            Ok(())
        });
    }
    let mut tc = tokio::process::Command::from(c);
    tc.kill_on_drop(true);
    tc.spawn().map_err(|e| Fail::new(exit::ERROR, format!("cannot start {:?}: {e}", cmd[0])))
}

/// SIGTERM to the command's process group, SIGKILL after `grace`.
async fn stop(child: &mut tokio::process::Child, grace: Duration) -> Option<ExitStatus> {
    let Some(pid) = child.id() else { return child.try_wait().ok().flatten() };
    // SAFETY: signalling a process group we created.
    unsafe { libc::kill(-(pid as i32), libc::SIGTERM) };
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(s) => s.ok(),
        Err(_) => {
            eprintln!("ballot: command did not stop within {grace:?}; sending SIGKILL");
            // SAFETY: as above.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
            child.wait().await.ok()
        }
    }
}

pub(crate) async fn run(
    client: &Client,
    election: &str,
    value: Option<String>,
    grace: Duration,
    requeue: bool,
    cmd: Vec<String>,
) -> CliResult {
    let e = client.election(election)?;
    let value = value.unwrap_or_else(|| format!("{}:{}", hostname(), std::process::id()));
    let mut events = e.events();
    loop {
        let lead = tokio::select! {
            r = e.campaign(&value) => r?,
            sig = terminated() => {
                client.close().await?;
                return Ok((128 + sig) as u8);
            }
        };
        eprintln!("ballot: elected term={} key={}; starting {:?}", lead.term(), lead.key(), cmd[0]);
        let mut child = match spawn(&cmd, election, lead.term(), lead.key()) {
            Ok(c) => c,
            Err(f) => {
                let _ = e.resign().await;
                client.close().await?;
                return Err(f);
            }
        };
        let outcome = loop {
            tokio::select! {
                s = child.wait() => match s {
                    Ok(s) => break Outcome::Exited(s),
                    Err(err) => return Err(Fail::new(exit::ERROR, format!("waiting for the command: {err}"))),
                },
                ev = events.next() => match ev {
                    Some(Event::Lost { reason }) => break Outcome::Lost(reason.to_string()),
                    Some(Event::Ended) | None => break Outcome::Ended,
                    Some(Event::Suspended) => eprintln!("ballot: leadership suspended; the command keeps running until lost"),
                    _ => {}
                },
                sig = terminated() => break Outcome::Signal(sig),
            }
        };
        match outcome {
            Outcome::Exited(status) => {
                eprintln!("ballot: command exited ({status}); resigning");
                match e.resign().await {
                    Ok(()) => {}
                    Err(err) if err.kind() == ErrorKind::NotLeader => {}
                    Err(err) => return Err(err.into()),
                }
                if !requeue {
                    client.close().await?;
                    return Ok(status_code(status));
                }
            }
            Outcome::Lost(reason) => {
                eprintln!("ballot: leadership lost ({reason}); stopping the command");
                stop(&mut child, grace).await;
                if !requeue {
                    client.close().await?;
                    return Err(Fail::code(exit::LOST));
                }
            }
            Outcome::Ended => {
                eprintln!("ballot: the election was ended; stopping the command");
                stop(&mut child, grace).await;
                client.close().await?;
                return Err(Fail::code(exit::ENDED));
            }
            Outcome::Signal(sig) => {
                stop(&mut child, grace).await;
                let _ = e.resign().await;
                client.close().await?;
                return Ok((128 + sig) as u8);
            }
        }
    }
}
