//! The load generator's report: oha's JSON output (`oha --output-format json`), reduced to the
//! numbers the comparison needs.
//!
//! oha writes durations in seconds (`summary.slowest`, `latencyPercentiles.p99`), the achieved
//! rate as `summary.requestsPerSec`, and counts per status code and per error message; a field is
//! `null` when no request succeeded. The reduced [`LoadReport`] holds milliseconds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::samples::Distribution;

/// Why an oha report could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadReportError {
    /// The text is not oha's JSON report.
    #[error("oha report: not the expected JSON ({0}); was oha run with --output-format json?")]
    Json(#[from] serde_json::Error),
    /// A latency figure is missing or null: no request succeeded.
    #[error("oha report: `{field}` is missing or null (no successful request; errors: {errors})")]
    NoLatency {
        /// The JSON field, e.g. `latencyPercentiles.p99`.
        field: &'static str,
        /// oha's error distribution, as text.
        errors: String,
    },
    /// A figure is negative or not finite.
    #[error("oha report: `{field}` = {value} is not a finite, non-negative number")]
    BadNumber {
        /// The JSON field.
        field: &'static str,
        /// Its value.
        value: f64,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OhaJson {
    summary: OhaSummary,
    latency_percentiles: BTreeMap<String, Option<f64>>,
    #[serde(default)]
    status_code_distribution: BTreeMap<String, u64>,
    #[serde(default)]
    error_distribution: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OhaSummary {
    total: f64,
    slowest: Option<f64>,
    requests_per_sec: f64,
}

/// One load run, reduced: what the comparison tables show.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Requests that got an answer with a 2xx status.
    pub ok: u64,
    /// Requests that got an answer with any other status.
    pub non_2xx: u64,
    /// Requests that failed without an answer (connection errors, timeouts).
    pub errors: u64,
    /// Wall time of the run, s (oha's `summary.total`).
    pub duration_s: f64,
    /// Achieved rate over the run, requests/s (oha's `summary.requestsPerSec`).
    pub rate_per_s: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 90th percentile latency, ms.
    pub p90_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Slowest request, ms.
    pub max_ms: f64,
    /// The error messages oha reported, with counts.
    pub error_kinds: BTreeMap<String, u64>,
}

impl LoadReport {
    /// Parses oha's JSON report (`oha --output-format json`). Errors when it is not that JSON,
    /// when a latency figure is null (no request succeeded) or a number is negative or not
    /// finite.
    pub fn from_oha_json(text: &str) -> Result<Self, LoadReportError> {
        let raw: OhaJson = serde_json::from_str(text)?;
        let errors_text = || format!("{:?}", raw.error_distribution);
        let percentile = |key: &str, field: &'static str| -> Result<f64, LoadReportError> {
            let seconds = raw
                .latency_percentiles
                .get(key)
                .copied()
                .flatten()
                .ok_or_else(|| LoadReportError::NoLatency {
                    field,
                    errors: errors_text(),
                })?;
            checked(field, seconds).map(|s| s * 1000.0)
        };
        let slowest = raw
            .summary
            .slowest
            .ok_or_else(|| LoadReportError::NoLatency {
                field: "summary.slowest",
                errors: errors_text(),
            })?;
        let mut ok = 0;
        let mut non_2xx = 0;
        for (code, count) in &raw.status_code_distribution {
            if code.starts_with('2') {
                ok += count;
            } else {
                non_2xx += count;
            }
        }
        Ok(Self {
            ok,
            non_2xx,
            errors: raw.error_distribution.values().sum(),
            duration_s: checked("summary.total", raw.summary.total)?,
            rate_per_s: checked("summary.requestsPerSec", raw.summary.requests_per_sec)?,
            p50_ms: percentile("p50", "latencyPercentiles.p50")?,
            p90_ms: percentile("p90", "latencyPercentiles.p90")?,
            p99_ms: percentile("p99", "latencyPercentiles.p99")?,
            max_ms: checked("summary.slowest", slowest)? * 1000.0,
            error_kinds: raw.error_distribution.clone(),
        })
    }

    /// One report for several runs of the same path (the interleaved segments of a
    /// comparison): counts, error kinds and wall time summed, the rate over the summed time, and
    /// the latency figures from `latencies` (every run's samples merged) instead of the runs'
    /// own percentiles. `None` when `runs` is empty.
    pub fn merged(runs: &[LoadReport], latencies: &Distribution) -> Option<Self> {
        if runs.is_empty() {
            return None;
        }
        let mut error_kinds = BTreeMap::new();
        for run in runs {
            for (kind, count) in &run.error_kinds {
                *error_kinds.entry(kind.clone()).or_default() += count;
            }
        }
        let duration_s: f64 = runs.iter().map(|run| run.duration_s).sum();
        let requests: u64 = runs.iter().map(LoadReport::requests).sum();
        Some(Self {
            ok: runs.iter().map(|run| run.ok).sum(),
            non_2xx: runs.iter().map(|run| run.non_2xx).sum(),
            errors: runs.iter().map(|run| run.errors).sum(),
            duration_s,
            rate_per_s: if duration_s > 0.0 {
                requests as f64 / duration_s
            } else {
                0.0
            },
            p50_ms: latencies.quantile(0.50),
            p90_ms: latencies.quantile(0.90),
            p99_ms: latencies.quantile(0.99),
            max_ms: latencies.max(),
            error_kinds,
        })
    }

    /// Every request sent: answered (any status) and failed.
    pub fn requests(&self) -> u64 {
        self.ok + self.non_2xx + self.errors
    }

    /// Whether every request got a 2xx answer (and there was at least one).
    pub fn all_ok(&self) -> bool {
        self.ok > 0 && self.non_2xx == 0 && self.errors == 0
    }
}

fn checked(field: &'static str, value: f64) -> Result<f64, LoadReportError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(LoadReportError::BadNumber { field, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    /// The shape oha 1.16 prints (trimmed histogram and details).
    const REPORT: &str = r#"{
      "summary": {"successRate": 1.0, "total": 5.0012, "slowest": 0.0123, "fastest": 0.0002,
                  "average": 0.0007, "requestsPerSec": 999.76, "totalData": 5120000,
                  "sizePerRequest": 1024, "sizePerSec": 1023754.1},
      "responseTimeHistogram": {"0.0002": 10},
      "latencyPercentiles": {"p10": 0.0003, "p25": 0.0004, "p50": 0.0006, "p75": 0.0008,
                             "p90": 0.0011, "p95": 0.0014, "p99": 0.0031, "p99.9": 0.008,
                             "p99.99": 0.012},
      "rps": {"mean": 1000.0},
      "details": {"DNSDialup": {"average": 0.0001}},
      "statusCodeDistribution": {"200": 4990, "503": 7},
      "errorDistribution": {"connection closed before message completed": 3}
    }"#;

    #[test]
    fn seconds_become_milliseconds_and_statuses_are_split() {
        let report = LoadReport::from_oha_json(REPORT).unwrap();
        assert_eq!(report.ok, 4990);
        assert_eq!(report.non_2xx, 7);
        assert_eq!(report.errors, 3);
        assert_eq!(report.requests(), 5000);
        assert!(!report.all_ok());
        assert!((report.p50_ms - 0.6).abs() < 1e-9, "{}", report.p50_ms);
        assert!((report.p90_ms - 1.1).abs() < 1e-9);
        assert!((report.p99_ms - 3.1).abs() < 1e-9);
        assert!((report.max_ms - 12.3).abs() < 1e-9);
        assert!((report.rate_per_s - 999.76).abs() < 1e-9);
        assert!((report.duration_s - 5.0012).abs() < 1e-9);
    }

    /// A real report: `oha --no-tui --output-format json -q 200 --latency-correction -c 4 -z 2s`
    /// against `weft-bench responder` (oha 1.16.0), one request aborted at the deadline.
    #[test]
    fn a_real_oha_report() {
        let text = include_str!("../testdata/oha-1.16.0.json");
        let report = LoadReport::from_oha_json(text).unwrap();
        assert_eq!((report.ok, report.non_2xx, report.errors), (400, 0, 1));
        assert_eq!(report.error_kinds.get("aborted due to deadline"), Some(&1));
        assert!((report.p99_ms - 2.584114).abs() < 1e-9, "{}", report.p99_ms);
        assert!((report.max_ms - 3.663947).abs() < 1e-9);
        assert!((report.rate_per_s - 200.3550895750732).abs() < 1e-9);
    }

    #[test]
    fn a_run_without_success_is_an_error_naming_the_field_and_the_errors() {
        let text = r#"{"summary": {"total": 1.0, "slowest": null, "requestsPerSec": 0.0},
            "latencyPercentiles": {"p50": null, "p90": null, "p99": null},
            "statusCodeDistribution": {},
            "errorDistribution": {"connection refused": 12}}"#;
        let error = LoadReport::from_oha_json(text).unwrap_err().to_string();
        assert!(error.contains("summary.slowest"), "{error}");
        assert!(error.contains("no successful request"), "{error}");
        assert!(error.contains("connection refused"), "{error}");
    }

    #[test]
    fn missing_percentile_and_other_json_are_errors() {
        let text = r#"{"summary": {"total": 1.0, "slowest": 0.1, "requestsPerSec": 5.0},
            "latencyPercentiles": {"p50": 0.1, "p90": 0.1}}"#;
        let error = LoadReport::from_oha_json(text).unwrap_err().to_string();
        assert!(error.contains("latencyPercentiles.p99"), "{error}");
        let error = LoadReport::from_oha_json("Summary:\n  Success rate: 100%")
            .unwrap_err()
            .to_string();
        assert!(error.contains("--output-format json"), "{error}");
    }

    #[test]
    fn merged_runs_sum_counts_and_time_and_take_latencies_from_the_samples() {
        let first = LoadReport::from_oha_json(REPORT).unwrap();
        let mut second = first.clone();
        second.ok = 10;
        second.non_2xx = 0;
        second.errors = 2;
        second.duration_s = 1.0;
        second.error_kinds = BTreeMap::from([("timeout".to_string(), 2)]);
        let latencies =
            Distribution::new((1..=1000).map(|i| f64::from(i) / 100.0).collect()).expect("samples");
        let merged = LoadReport::merged(&[first, second], &latencies).unwrap();
        assert_eq!((merged.ok, merged.non_2xx, merged.errors), (5000, 7, 5));
        assert_eq!(merged.error_kinds.get("timeout"), Some(&2));
        assert_eq!(
            merged
                .error_kinds
                .get("connection closed before message completed"),
            Some(&3)
        );
        assert!((merged.duration_s - 6.0012).abs() < 1e-9);
        assert!((merged.rate_per_s - 5012.0 / 6.0012).abs() < 1e-9);
        // From the samples, not from the runs' own percentiles (p99 3.1 ms in REPORT).
        assert_eq!(merged.p50_ms, 5.0);
        assert_eq!(merged.p90_ms, 9.0);
        assert_eq!(merged.p99_ms, 9.9);
        assert_eq!(merged.max_ms, 10.0);
        assert!(LoadReport::merged(&[], &latencies).is_none());
    }

    #[test]
    fn negative_numbers_are_refused() {
        let text = r#"{"summary": {"total": 1.0, "slowest": 0.1, "requestsPerSec": -5.0},
            "latencyPercentiles": {"p50": 0.1, "p90": 0.1, "p99": 0.1},
            "statusCodeDistribution": {"200": 5}}"#;
        let error = LoadReport::from_oha_json(text).unwrap_err().to_string();
        assert!(error.contains("summary.requestsPerSec"), "{error}");
    }

    #[test]
    fn only_2xx_counts_as_ok() {
        let text = r#"{"summary": {"total": 1.0, "slowest": 0.1, "requestsPerSec": 5.0},
            "latencyPercentiles": {"p50": 0.1, "p90": 0.1, "p99": 0.1},
            "statusCodeDistribution": {"200": 3, "204": 1, "301": 1}}"#;
        let report = LoadReport::from_oha_json(text).unwrap();
        assert_eq!((report.ok, report.non_2xx, report.errors), (4, 1, 0));
        assert!(!report.all_ok());
    }
}
