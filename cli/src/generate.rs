//! `ballot __generate DIR`: the shell completions and man pages of the packaged
//! CLI, made from the clap definitions themselves, so they cannot drift from
//! `--help`. scripts/dist.sh calls it; it is hidden from `--help`.

use std::io;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::{exit, Cli, CliResult, Fail};

/// Writes, under `dir`, the tree a package installs below its prefix's `share/`:
/// `man/man1/ballot.1` (and `ballot-<command>.1` per command),
/// `bash-completion/completions/ballot`, `zsh/site-functions/_ballot` and
/// `fish/vendor_completions.d/ballot.fish`.
pub(crate) fn generate(dir: &Path) -> CliResult {
    write_all(dir).map_err(|e| Fail::new(exit::ERROR, format!("cannot write into {}: {e}", dir.display())))?;
    Ok(exit::OK)
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
