//! Processes started inside a lab host's network namespace.

use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A process running in a lab host. Dropping it stops it: SIGTERM, then SIGKILL after 2 s.
#[derive(Debug)]
pub struct LabProcess {
    name: String,
    child: Option<Child>,
}

impl LabProcess {
    pub(crate) fn new(name: String, child: Child) -> Self {
        Self {
            name,
            child: Some(child),
        }
    }

    /// The name given when the process was started (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends `signal` to the process (e.g. SIGTERM to test graceful shutdown). Errors when the
    /// process is gone.
    pub fn signal(&self, signal: Signal) -> Result<(), nix::Error> {
        match self.pid() {
            Some(pid) => kill(Pid::from_raw(pid as i32), signal),
            None => Err(nix::Error::ESRCH),
        }
    }

    /// Stops the process: SIGTERM, waits up to `grace`, then SIGKILL. Returns whether it exited
    /// within the grace period.
    pub fn stop(&mut self, grace: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(2));
    }
}
