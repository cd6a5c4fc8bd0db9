//! Push debouncing, as Istio's Pilot does it: after a config event, wait for a quiet period
//! (`PILOT_DEBOUNCE_AFTER`, default 100 ms) with no further event, but never longer than a
//! maximum delay (`PILOT_DEBOUNCE_MAX`, default 10 s) after the first event of the burst.

use std::time::{Duration, Instant};

/// Debounce settings (Istio's defaults in [`Default`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DebounceSettings {
    /// Quiet period after the last event before pushing.
    pub after: Duration,
    /// Longest delay after the first event of a burst.
    pub max: Duration,
}

impl Default for DebounceSettings {
    fn default() -> Self {
        Self {
            after: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

/// The state of one burst of events.
#[derive(Debug, Clone)]
pub struct Debouncer {
    settings: DebounceSettings,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Debouncer {
    /// A debouncer with no pending event.
    pub fn new(settings: DebounceSettings) -> Self {
        Self {
            settings,
            first: None,
            last: None,
        }
    }

    /// Records an event at `now`.
    pub fn event(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When the pending burst should be pushed, or `None` when nothing is pending.
    pub fn deadline(&self) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some((last + self.settings.after).min(first + self.settings.max))
    }

    /// If the deadline has passed at `now`, ends the burst and returns when it started (the
    /// time convergence is measured from).
    pub fn fire(&mut self, now: Instant) -> Option<Instant> {
        if self.deadline()? <= now {
            self.last = None;
            self.first.take()
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_quiet_period() {
        let mut d = Debouncer::new(DebounceSettings::default());
        let t0 = Instant::now();
        assert_eq!(d.deadline(), None);
        d.event(t0);
        d.event(t0 + Duration::from_millis(50));
        assert_eq!(d.deadline(), Some(t0 + Duration::from_millis(150)));
        assert_eq!(d.fire(t0 + Duration::from_millis(149)), None);
        assert_eq!(d.fire(t0 + Duration::from_millis(150)), Some(t0));
        assert_eq!(d.deadline(), None);
    }

    #[test]
    fn never_waits_longer_than_max() {
        let mut d = Debouncer::new(DebounceSettings::default());
        let t0 = Instant::now();
        let mut t = t0;
        while t < t0 + Duration::from_secs(12) {
            d.event(t);
            t += Duration::from_millis(50);
        }
        assert_eq!(d.deadline(), Some(t0 + Duration::from_secs(10)));
    }
}
