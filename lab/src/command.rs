//! Running the machine's network tools (`ip`, `iptables`) with errors that say what failed.

use std::process::{Command, Output};

/// A tool that could not be run or that reported failure.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The program could not be started (not installed, not executable).
    #[error("cannot run `{command}`: {source} (is it installed and on PATH?)")]
    Spawn {
        /// The command line.
        command: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The program ran and exited non-zero.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// The exit status as text.
        status: String,
        /// What the program wrote to standard error (trimmed).
        stderr: String,
    },
}

/// Runs `program args...`, waits, and returns its output. Errors when it cannot be started or
/// exits non-zero; the error carries the command line and standard error.
pub fn run_checked(program: &str, args: &[&str]) -> Result<Output, CommandError> {
    let command = format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| CommandError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(CommandError::Failed {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(output)
}

/// Runs a command and ignores its result: for best-effort cleanup, where a missing object is
/// not an error.
pub(crate) fn run_quiet(program: &str, args: &[&str]) {
    let _ = Command::new(program).args(args).output();
}
