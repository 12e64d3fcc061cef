//! `ballot __generate DIR`: the man pages and shell completions of the packaged
//! CLI, made from the clap definitions themselves, so that they cannot drift from
//! `--help`. scripts/dist.sh calls it. Like `__supervise`, it is handled before
//! clap parses anything, so the pages and completions do not offer it.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::{exit, Cli};

/// Writes, under the one argument DIR, the tree a package installs below its
/// prefix's `share/`: `man/man1/ballot.1` (and `ballot-<command>.1` per command),
/// `bash-completion/completions/ballot`, `zsh/site-functions/_ballot` and
/// `fish/vendor_completions.d/ballot.fish`. Exits 2 without exactly one argument,
/// 1 when a file cannot be written.
pub(crate) fn main(args: Vec<OsString>) -> ExitCode {
    let [dir] = args.as_slice() else {
        eprintln!("ballot: error: invalid_argument: usage: ballot __generate DIR");
        return ExitCode::from(exit::USAGE);
    };
    let dir = Path::new(dir);
    match write_all(dir) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("ballot: error: cannot write into {}: {e}", dir.display());
            ExitCode::from(exit::ERROR)
        }
    }
}

fn write_all(dir: &Path) -> io::Result<()> {
    let man = dir.join("man/man1");
    std::fs::create_dir_all(&man)?;
    clap_mangen::generate_to(Cli::command(), &man)?;
    let mut cmd = Cli::command();
    for (shell, sub, file) in [
        (Shell::Bash, "bash-completion/completions", "ballot"),
        (Shell::Zsh, "zsh/site-functions", "_ballot"),
        (Shell::Fish, "fish/vendor_completions.d", "ballot.fish"),
    ] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d)?;
        let mut f = std::fs::File::create(d.join(file))?;
        clap_complete::generate(shell, &mut cmd, "ballot", &mut f);
    }
    Ok(())
}
