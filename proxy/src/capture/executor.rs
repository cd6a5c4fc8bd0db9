//! Runs the commands of [`super::rules`] idempotently: chains are created only when missing,
//! jump rules are appended only when `-C` does not find them, and deletions stop when `-C`
//! no longer finds the rule.

use std::process::Command;

use super::CaptureError;
use super::rules::{Action, IptablesCommand};

/// Result of one program run: whether it exited with status 0, and its standard error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunOutput {
    /// Exit status 0.
    pub success: bool,
    /// Exit status as text (`exit status: 1`), for error messages.
    pub status: String,
    /// Standard error, trimmed.
    pub stderr: String,
}

/// Runs one program with arguments. Implemented by [`SystemRunner`]; tests use fakes.
pub trait Runner {
    /// Runs `program` with `args` to completion. A program that ran and failed is
    /// `Ok(RunOutput { success: false, .. })`; `Err` only when it could not be started
    /// ([`CaptureError::Spawn`]).
    fn run(&self, program: &str, args: &[String]) -> Result<RunOutput, CaptureError>;
}

/// Runs programs from `PATH`, optionally behind a wrapper command such as
/// `ip netns exec NAME` or `nsenter --net=/proc/PID/ns/net`.
#[derive(Clone, Debug, Default)]
pub struct SystemRunner {
    wrapper: Vec<String>,
}

impl SystemRunner {
    /// Runs programs directly.
    pub fn new() -> Self {
        SystemRunner::default()
    }

    /// Runs every program as `wrapper... program args...`.
    pub fn wrapped<I, S>(wrapper: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        SystemRunner {
            wrapper: wrapper.into_iter().map(Into::into).collect(),
        }
    }
}

impl Runner for SystemRunner {
    fn run(&self, program: &str, args: &[String]) -> Result<RunOutput, CaptureError> {
        let mut argv: Vec<&str> = self.wrapper.iter().map(String::as_str).collect();
        argv.push(program);
        argv.extend(args.iter().map(String::as_str));
        let (first, rest) = argv.split_first().unwrap_or((&program, &[]));
        let output =
            Command::new(first)
                .args(rest)
                .output()
                .map_err(|source| CaptureError::Spawn {
                    command: argv.join(" "),
                    source,
                })?;
        Ok(RunOutput {
            success: output.status.success(),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Upper bound on `-D` repetitions for one rule (guards against a runner that never says
/// "absent").
const MAX_DUPLICATE_DELETES: usize = 64;

fn must(
    runner: &dyn Runner,
    command: &IptablesCommand,
    args: &[String],
) -> Result<(), CaptureError> {
    let program = command.family.program();
    let out = runner.run(program, args)?;
    if out.success {
        tracing::debug!(command = %format!("{program} {}", args.join(" ")), "iptables");
        Ok(())
    } else {
        Err(CaptureError::CommandFailed {
            command: format!("{program} {}", args.join(" ")),
            status: out.status,
            stderr: out.stderr,
        })
    }
}

/// True when the check command exits 0. A runner error (program missing) counts as "absent"
/// for the cleanup paths, which must succeed on a namespace where nothing was installed.
fn probe(runner: &dyn Runner, command: &IptablesCommand, op: &str) -> bool {
    runner
        .run(command.family.program(), &command.with_op(op))
        .map(|out| out.success)
        .unwrap_or(false)
}

fn chain_exists(runner: &dyn Runner, command: &IptablesCommand) -> bool {
    let args = vec![
        "-t".to_owned(),
        super::rules::NAT.to_owned(),
        "-S".to_owned(),
        command.chain().to_owned(),
    ];
    runner
        .run(command.family.program(), &args)
        .map(|out| out.success)
        .unwrap_or(false)
}

/// Executes `commands` in order through `runner`, honouring each command's [`Action`]:
/// existence checks (`-S`, `-C`) before creating chains, appending jumps or deleting.
///
/// Errors: the first command that fails ([`CaptureError::CommandFailed`]) or cannot be started
/// ([`CaptureError::Spawn`]); earlier commands stay applied (re-running converges).
pub fn execute(commands: &[IptablesCommand], runner: &dyn Runner) -> Result<(), CaptureError> {
    for command in commands {
        match command.action {
            Action::CreateChain => {
                if !chain_exists(runner, command) {
                    must(runner, command, &command.args)?;
                }
            }
            Action::Flush | Action::Append => must(runner, command, &command.args)?,
            Action::AppendUnlessPresent => {
                if !probe(runner, command, "-C") {
                    must(runner, command, &command.args)?;
                }
            }
            Action::DeleteAllPresent => {
                for _ in 0..MAX_DUPLICATE_DELETES {
                    if !probe(runner, command, "-C") {
                        break;
                    }
                    must(runner, command, &command.with_op("-D"))?;
                }
            }
            Action::FlushIfExists | Action::DeleteChainIfExists => {
                if chain_exists(runner, command) {
                    must(runner, command, &command.args)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "executor_tests.rs"]
mod tests;
