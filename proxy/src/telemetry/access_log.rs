//! JSON access logs, one line per request or TCP connection, with the keys of Istio's JSON
//! access-log format (`meshConfig.accessLogEncoding: JSON`): `start_time`, `method`, `path`,
//! `authority`, `protocol`, `response_code`, `response_flags`, `bytes_received`, `bytes_sent`,
//! `duration` (ms), `upstream_host`, `upstream_cluster`, `request_id` (x-request-id),
//! `traceparent`. Missing values are JSON `null`. A request that matched an AUDIT
//! AuthorizationPolicy also carries `audit_policy` (`<namespace>/<name>`; Istio's AUDIT action,
//! Envoy's `access_log_hint`); the key is absent otherwise.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;

/// One access-log line. Borrowed from the record being logged; serialised outside any lock.
#[derive(Debug, Serialize)]
pub struct AccessLogEntry<'a> {
    /// Start of the request/connection, RFC 3339 UTC with milliseconds (Envoy's
    /// `%START_TIME%`).
    pub start_time: String,
    /// HTTP method; `null` for TCP.
    pub method: Option<&'a str>,
    /// Path with query; `null` for TCP.
    pub path: Option<&'a str>,
    /// `:authority` / `Host`; `null` for TCP.
    pub authority: Option<&'a str>,
    /// `HTTP/1.1`, `HTTP/2`, or `TCP`.
    pub protocol: &'a str,
    /// HTTP status; `0` when no response was sent, `null` for TCP.
    pub response_code: Option<u16>,
    /// Envoy-style response flags, `-` for none.
    pub response_flags: &'a str,
    /// Bytes received from the downstream (request body, or TCP bytes in).
    pub bytes_received: u64,
    /// Bytes sent to the downstream (response body, or TCP bytes out).
    pub bytes_sent: u64,
    /// Total duration in milliseconds.
    pub duration: u64,
    /// Upstream endpoint `ip:port`.
    pub upstream_host: Option<&'a str>,
    /// Upstream cluster name (`outbound|9080||details.default.svc.cluster.local`).
    pub upstream_cluster: Option<&'a str>,
    /// `x-request-id`.
    pub request_id: Option<&'a str>,
    /// W3C `traceparent`.
    pub traceparent: Option<&'a str>,
    /// The AUDIT AuthorizationPolicy the request matched; the key is left out when none did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_policy: Option<&'a str>,
}

/// Where access-log lines go. Off by default; when off, recording does no formatting at all.
pub struct AccessLog {
    sink: Option<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

impl Default for AccessLog {
    /// Access logging off.
    fn default() -> Self {
        AccessLog::off()
    }
}

impl AccessLog {
    /// No access log (Istio's default `accessLogFile: ""`).
    pub fn off() -> Self {
        AccessLog { sink: None }
    }

    /// Lines to the process's standard output (`accessLogFile: /dev/stdout`).
    pub fn stdout() -> Self {
        AccessLog::to_writer(std::io::stdout())
    }

    /// Lines appended to the file at `path` (created if missing). Errors: the file cannot be
    /// opened for appending.
    pub fn file(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(AccessLog::to_writer(file))
    }

    /// Lines to any writer (tests pass a shared buffer). Each line is written with one
    /// `write_all` under a short lock; nothing is held across `.await` (recording is sync).
    pub fn to_writer(writer: impl Write + Send + 'static) -> Self {
        AccessLog {
            sink: Some(Mutex::new(Box::new(writer))),
        }
    }

    /// True when lines are written somewhere.
    pub fn is_enabled(&self) -> bool {
        self.sink.is_some()
    }

    /// Serialises `entry` and writes it as one line. Write errors are logged with `tracing`
    /// and otherwise ignored: losing a log line must not fail traffic.
    pub fn write(&self, entry: &AccessLogEntry<'_>) {
        let Some(sink) = &self.sink else {
            return;
        };
        let mut line = match serde_json::to_vec(entry) {
            Ok(line) => line,
            Err(error) => {
                tracing::warn!(%error, "access log entry not serialisable");
                return;
            }
        };
        line.push(b'\n');
        let mut sink = sink.lock();
        if let Err(error) = sink.write_all(&line).and_then(|()| sink.flush()) {
            tracing::warn!(%error, "access log write failed");
        }
    }
}

/// `time` as RFC 3339 UTC with milliseconds, e.g. `2024-02-29T23:59:07.123Z`. Times before
/// 1970 are clamped to the epoch.
pub fn rfc3339_millis(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (the well-known era-based
/// conversion: 400-year eras of 146 097 days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365
    let mp = (5 * doy + 2) / 153; // March-based month, 0..=11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        let cases = [
            (0, 0, "1970-01-01T00:00:00.000Z"),
            (951_782_400, 5, "2000-02-29T00:00:00.005Z"),
            (1_709_251_147, 123, "2024-02-29T23:59:07.123Z"),
            (1_735_689_599, 999, "2024-12-31T23:59:59.999Z"),
            (4_102_444_800, 0, "2100-01-01T00:00:00.000Z"),
        ];
        for (secs, millis, want) in cases {
            let t = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
            assert_eq!(rfc3339_millis(t), want);
        }
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        // Walk 200 years day by day: dates must advance by exactly one calendar day.
        let mut prev = civil_from_days(-1);
        for day in 0..73_000 {
            let (y, m, d) = civil_from_days(day);
            let (py, pm, pd) = prev;
            let next_day = y == py && m == pm && d == pd + 1;
            let next_month = y == py && m == pm + 1 && d == 1;
            let next_year = y == py + 1 && m == 1 && d == 1 && pm == 12 && pd == 31;
            assert!(
                next_day || next_month || next_year,
                "{prev:?} -> {:?}",
                (y, m, d)
            );
            prev = (y, m, d);
        }
    }
}
