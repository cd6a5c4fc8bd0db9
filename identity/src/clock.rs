//! Time source for the CA and the rotation logic, behind a trait so tests control time.

use std::fmt;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;

/// Something that tells the current wall-clock time.
///
/// The CA reads it for `notBefore`/`notAfter` and the rotation check compares certificates
/// against it. Production code uses [`SystemClock`]; tests use [`TestClock`].
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's wall clock ([`SystemTime::now`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to, for tests.
#[derive(Debug)]
pub struct TestClock {
    now: Mutex<SystemTime>,
}

impl TestClock {
    /// A clock reading `start` until [`TestClock::set`] or [`TestClock::advance`] is called.
    pub fn new(start: SystemTime) -> Self {
        TestClock {
            now: Mutex::new(start),
        }
    }

    /// Sets the time the clock reads.
    pub fn set(&self, now: SystemTime) {
        *self.now.lock() = now;
    }

    /// Moves the clock forward by `by`; saturates at the largest representable time.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock();
        if let Some(later) = now.checked_add(by) {
            *now = later;
        }
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        *self.now.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_clock_moves_only_when_told() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let clock = TestClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_secs(5));
        assert_eq!(clock.now(), start + Duration::from_secs(5));
        clock.set(start);
        assert_eq!(clock.now(), start);
    }

    #[test]
    fn system_clock_is_after_2020() {
        let year_2020 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800);
        assert!(SystemClock.now() > year_2020);
    }
}
